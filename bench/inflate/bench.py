"""inflate: every mechanism, touched and untouched, on the reference's schedule (schedule.py); writes
raw data, metadata, the per-iteration rows and the summary."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from inflate import analysis, schedule
from lib import limits as host_limits
from lib import results

CPUS = 1  # one workload vCPU per VM: the reusing VM and the first-touch VM beside it share 2 cores
# Full: the reusing VM (x GiB) and the first-touch VM beside it (x GiB more) must fit this 24 GiB host
# at once, so the VM is 12 GiB rather than the reference's 20 (x = 10 GiB).
FULL = {"mem_gib": 12, "iterations": 5, "wait_s": 2.0}
SHORT = {"mem_gib": 8, "iterations": 3, "wait_s": 1.0}
MECHANISMS = analysis.MECHANISMS


def params(short: bool) -> dict:
    s = SHORT if short else FULL
    x = s["mem_gib"] - schedule.SHRUNK_GIB
    return {**s, "x_gib": x, "cpus": CPUS, "short": short, "shrink_to_gib": schedule.SHRUNK_GIB,
            "mechanisms": list(MECHANISMS), "variants": list(analysis.VARIANTS), "dropped_iterations": analysis.DROPPED,
            "workload": {v: schedule.workload(v, x, 1) + " (once per iteration)" for v in analysis.VARIANTS},
            "first_touch_workload": schedule.FIRST_TOUCH_WORKLOAD.format(x=x),
            "floor_probes": list(schedule.FLOOR_PROBES), "steps_4k_mib": schedule.STEPS_4K_MIB}


def _available_bytes() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def _save(raw: Path, rec: dict) -> None:
    name = f"{rec['variant']}_{rec['mechanism']}"
    samples = rec.pop("rss_samples", None)
    if samples:
        results.write_rss_csv(raw / f"{name}_rss.csv", samples)
    (raw / f"{name}_guest.txt").write_text(rec.pop("guest_output", ""))
    results.write_json(raw / f"{name}.json", rec)


def run(hvmm: str, limits_bin: Path, out_base: str, short: bool) -> Path:
    p = params(short)
    need, available = 2 * p["x_gib"] * analysis.GIB + analysis.GIB, _available_bytes()
    if available < need:
        sys.exit(f"inflate: needs {need / analysis.GIB:.0f} GiB available (a {p['mem_gib']} GiB VM reusing "
                 f"{p['x_gib']} GiB beside a first-touch VM), MemAvailable is {available / analysis.GIB:.1f} GiB")
    d = results.result_dir("inflate", out_base)
    raw = d / "raw"
    raw.mkdir()
    results.write_json(d / "metadata.json", results.metadata(hvmm, {**p, "hvmm_limits": str(limits_bin)}))
    print(f"inflate: results in {d}", flush=True)
    print(f"inflate: host limits for context (hvmm_limits --gib {p['x_gib']} --probes first-touch,populate) ...", flush=True)
    try:
        context = host_limits.measure(limits_bin, p["x_gib"], reps=1, probes=("first-touch", "populate"))
    except Exception as e:  # noqa: BLE001 - context only; the side-by-side figures stand without it
        context = {"error": f"{type(e).__name__}: {e}"}
    results.write_json(raw / "limits_context.json", context)

    rows = []
    todo = [(v, m) for v in analysis.VARIANTS for m in MECHANISMS]
    for k, (variant, mech) in enumerate(todo):
        t = time.monotonic()
        print(f"inflate: [{k + 1}/{len(todo)}] {mech}, {variant}, {p['iterations']} iterations ...", flush=True)
        rec = schedule.run(hvmm, limits_bin, mech, variant, p)
        if rec.get("error"):
            print(f"inflate: {mech} ({variant}) FAILED: {rec['error']}", file=sys.stderr, flush=True)
        rs = analysis.iteration_rows(rec)
        rows += rs
        _save(raw, rec)
        done = [r for r in rs if r.get("iteration") is not None]
        print(f"inflate: {mech} ({variant}) {len(done)} iterations in {time.monotonic() - t:.0f} s: shrink ms "
              + ", ".join(analysis.fmt(r["shrink_ms"], ".1f") for r in done)
              + ("; reuse 1 / first touch " + ", ".join(analysis.fmt(r.get("reuse1_over_first_touch"), ".2f") for r in done)
                 if variant == "touched" else ""), flush=True)

    summary = analysis.summarize(rows, p, context)
    results.write_results(d, rows, summary, analysis.table(summary))
    return d


def load(d: Path) -> dict:
    """summary.json of a result directory (for `plot` and the index)."""
    return json.loads((d / "summary.json").read_text())

