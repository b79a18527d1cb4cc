"""inflate: runs every VM of the benchmark and writes raw data, metadata and the summary."""
from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

from inflate import analysis, one_vm
from lib import limits as host_limits
from lib import results

MEM_GIB = 16
CPUS = 2
# Every mechanism `--reclaim` offers; analysis.py compares each with hyperalloc and with the
# reference's figures. A mechanism that fails is reported as failed, never dropped.
MECHANISMS = analysis.MECHANISMS


def params(short: bool) -> dict:
    return {"mem_gib": MEM_GIB, "cpus": CPUS, "n_gib": [4] if short else [4, 12], "reps": 2 if short else 3,
            "mechanisms": list(MECHANISMS), "short": short,
            "workload": one_vm.workload(0).replace(" 0G", " <N>G"),
            "shrink_target": f"{MEM_GIB} GiB - N", "warmup": "hvmm_limits touches N GiB twice, then one unmeasured VM "
            "allocates max(N) GiB, so that the host's memory is not cold in the outer hypervisor (nested KVM)"}


def _save_record(raw: Path, rec: dict) -> None:
    name = f"{rec['mechanism']}_{rec['n_gib']}g_r{rec['rep']}"
    samples = rec.pop("rss_samples", None)
    if samples:
        results.write_rss_csv(raw / f"{name}_rss.csv", samples)
    results.write_json(raw / f"{name}.json", rec)


def _run_logged(what: str, fn, *args) -> dict:
    print(f"inflate: {what} ...", flush=True)
    try:
        rec = fn(*args)
        if rec.get("exit_code") != 0:
            rec["error"] = f"hvmm exited with {rec.get('exit_code')}: {rec.get('stderr', '').strip()[-500:]}"
    except Exception as e:  # one failed VM must not lose the others' data
        rec = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    if rec.get("error"):
        print(f"inflate: {what} FAILED: {rec['error']}", file=sys.stderr, flush=True)
    return rec


def run(hvmm: str, limits_bin: Path, out_base: str, short: bool) -> Path:
    p = params(short)
    d = results.result_dir("inflate", out_base)
    raw = d / "raw"
    raw.mkdir()
    results.write_json(d / "metadata.json", results.metadata(hvmm, {**p, "hvmm_limits": str(limits_bin)}))
    print(f"inflate: results in {d}", flush=True)

    limits = {}
    for n in p["n_gib"]:
        print(f"inflate: host limits for {n} GiB (hvmm_limits --gib {n}) ...", flush=True)
        limits[n] = host_limits.measure(limits_bin, n)
        results.write_json(raw / f"limits_{n}g.json", limits[n])
    _run_logged(f"warm-up VM (alloc {max(p['n_gib'])} GiB, not measured)", one_vm.first_touch, hvmm, max(p["n_gib"]),
                MEM_GIB, CPUS)

    rows = []
    for rep in range(p["reps"]):
        for n in p["n_gib"]:
            todo = [("none", one_vm.first_touch, (hvmm, n, MEM_GIB, CPUS))]
            todo += [(m, one_vm.run, (hvmm, m, n, MEM_GIB, CPUS)) for m in MECHANISMS]
            for mech, fn, args in todo:
                rec = _run_logged(f"rep {rep + 1}/{p['reps']}, N = {n} GiB, {mech}", fn, *args)
                rec.update({"mechanism": mech, "n_gib": n, "rep": rep})
                _save_record(raw, rec)
                rows.append(analysis.row(rec))

    summary = analysis.summarize(rows, limits)
    results.write_results(d, rows, summary, analysis.table(summary))
    return d


def load(d: Path) -> tuple[list[dict], dict]:
    """runs.json and summary.json of a result directory (for `plot`)."""
    return json.loads((d / "runs.json").read_text()), json.loads((d / "summary.json").read_text())
