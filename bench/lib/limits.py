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


def measure(limits_bin: Path, gib: int, reps: int = 3) -> dict:
    if not limits_bin.exists():
        raise FileNotFoundError(f"{limits_bin} not found: build it with "
                                f"`cmake --build <build> --target hvmm_limits`, or pass --limits PATH")
    p = subprocess.run([str(limits_bin), "--gib", str(gib), "--reps", str(reps)], capture_output=True, text=True,
                       timeout=600)
    if p.returncode != 0:
        raise RuntimeError(f"{limits_bin} --gib {gib} failed ({p.returncode}): {p.stderr.strip()}")
    return json.loads(p.stdout)
