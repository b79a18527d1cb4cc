"""Runs bench/limits (hvmm_limits): the host's own limits for discard, populate and first touch."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path


def default_path(hvmm: str) -> Path:
    """hvmm_limits from the same build tree as `hvmm` (<build>/hvmm → <build>/bench/limits/hvmm_limits)."""
    build = Path(hvmm).resolve().parent
    for p in (build / "bench" / "limits" / "hvmm_limits", build / "hvmm_limits"):
        if p.exists():
            return p
    return build / "bench" / "limits" / "hvmm_limits"


def measure(limits_bin: Path, gib: int, reps: int = 3, probes: tuple[str, ...] | None = None,
            steps_4k_mib: int | None = None) -> dict:
    """hvmm_limits' JSON; `probes` picks some of its probes (default: all of them)."""
    if not limits_bin.exists():
        raise FileNotFoundError(f"{limits_bin} not found: build it with "
                                f"`cmake --build <build> --target hvmm_limits`, or pass --limits PATH")
    cmd = [str(limits_bin), "--gib", str(gib), "--reps", str(reps)]
    if probes:
        cmd += ["--probes", ",".join(probes)]
    if steps_4k_mib:
        cmd += ["--steps-4k-mib", str(steps_4k_mib)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.strip()}")
    return json.loads(p.stdout)
