"""compiling: every candidate replays the kernel-build trace in its own 16 GiB VM, one after the
other; host RSS sampled every 0.5 s beside the guest's own in-use memory (the ideal curve)."""
from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

from compiling import analysis
from lib import replay as rp
from lib import results

MEM_GIB = 16
CPUS = 2
# Scales (README, "Benchmarks"): memory x8 puts the build's peak demand (1.02 GiB recorded) at ~8 GiB of
# the 16 GiB VM; time / 6 makes the 948 s trace a 158 s replay, 7 candidates in ~20 min (each VM adds
# ~10 s of boot, exit and counters). --short: time / 30, memory x4, ~5 min.
# settle_s: the VM idles this long after the replay before it stops, for "RSS settled": the scaled
# idle phases (5 s after drop_caches at /6) are shorter than some mechanisms need to give memory back.
FULL = {"time_scale": 6.0, "mem_scale": 8.0, "settle_s": 10.0}
SHORT = {"time_scale": 30.0, "mem_scale": 4.0, "settle_s": 5.0}


def params(short: bool, trace_info: dict) -> dict:
    s = SHORT if short else FULL
    return {"mem_gib": MEM_GIB, "cpus": CPUS, **s, "short": short, "candidates": list(rp.CANDIDATES),
            "candidate_flags": {n: rp.candidate_args(n)["flags"] for n in rp.CANDIDATES},
            "nominal_s": trace_info["duration_s"] / s["time_scale"],
            "peak_demand_gib": trace_info["peak_kib"] * s["mem_scale"] / 2**20,
            "sample_s": 0.5, "trace": str(rp.TRACE_DIR), "trace_conversion": trace_info}


def run_one(hvmm: str, name: str, trace: Path, p: dict, progress: rp.Progress, label: str) -> dict:
    try:
        run = rp.ReplayRun(hvmm, name, trace, p["time_scale"], p["mem_scale"], MEM_GIB, CPUS)
    except Exception as e:
        return {"candidate": name, **rp.CANDIDATES[name], "error": f"{type(e).__name__}: {e}"}
    try:
        deadline = time.monotonic() + 3 * p["nominal_s"] + 120
        while not run.finished():
            if time.monotonic() > deadline:
                break
            progress.show(f"{label} {name}: {run.phase_now()}, {time.monotonic() - run.started:.0f} s, "
                          f"RSS {run.rss_now() / 2**30:.2f} GiB")
            time.sleep(1)
        if run.finished() and run.vm.proc.poll() is None:
            progress.show(f"{label} {name}: replay done, idle {p['settle_s']:g} s (RSS settled)", force=True)
            time.sleep(p["settle_s"])
        rec = run.finish() if run.finished() else {"candidate": name, **rp.CANDIDATES[name],
                                                     "error": "timed out", "rss": [], "replay": {}}
    finally:
        run.close()
    return rec


def save_raw(raw: Path, rec: dict) -> None:
    name = rec["candidate"]
    with open(raw / f"{name}_rss.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["host_s", "rss_bytes"])
        w.writerows(rec.get("rss", []))
    with open(raw / f"{name}_ideal.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["host_s", "trace_ms", "inuse_bytes"])
        w.writerows((ns / 1e9, t, b) for ns, t, b in (rec.get("replay") or {}).get("samples", []))
    results.write_json(raw / f"{name}.json", rec)


def run(hvmm: str, out_base: str, short: bool, only: list[str] | None = None) -> Path:
    d = results.result_dir("compiling", out_base)
    raw = d / "raw"
    raw.mkdir()
    trace, info = rp.make_trace(d)
    p = params(short, info)
    names = only or list(rp.CANDIDATES)
    results.write_json(d / "metadata.json", results.metadata(hvmm, p))
    print(f"compiling: results in {d}; {len(names)} candidates x {p['nominal_s']:.0f} s replay "
          f"(time scale {p['time_scale']:g}, memory scale {p['mem_scale']:g})", flush=True)
    progress = rp.Progress("compiling")
    rows, t_start = [], time.monotonic()
    for i, name in enumerate(names):
        rec = run_one(hvmm, name, trace, p, progress, f"[{i + 1}/{len(names)}]")
        progress.done()
        save_raw(raw, rec)
        r = analysis.row(rec, p["nominal_s"], p["settle_s"])
        rows.append(r)
        print(f"compiling: [{i + 1}/{len(names)}] {name}: " + (f"FAILED: {r['error']}" if r.get("error") else
              f"{r['gib_min_total']:.2f} GiB·min, replay {r['replay_s']:.0f} s"), flush=True)
    summary = analysis.summarize(rows, {**p, "wall_s": time.monotonic() - t_start})
    results.write_results(d, rows, summary, analysis.table(summary))
    return d


def load(d: Path) -> dict:
    return json.loads((d / "summary.json").read_text())


def load_raw(d: Path, name: str) -> dict | None:
    f = d / "raw" / f"{name}.json"
    return json.loads(f.read_text()) if f.exists() else None
