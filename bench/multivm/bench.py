"""multivm: three VMs replay the kernel-build trace at once, started one third of the replay apart
(staggered) and, as a variant, all at the same time; their host RSS is summed."""
from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

from lib import replay as rp
from lib import results
from multivm import analysis

VMS = 3
MEM_GIB = 16
CPUS = 2
# The candidates minus the ones that only differ from these in the allocator or page size
# (run them with --candidates): reclamation, Linux-like FPR, virtio-mem, and no reclamation.
CANDIDATES = ["hyperalloc", "balloon-fpr-buddy", "virtio-mem-auto", "none-llfree"]
VARIANTS = ["staggered", "simultaneous"]
# Memory x4: 4.1 GiB peak demand per VM, three VMs without reclamation ~13 GiB of this 24 GiB host.
# Time / 10: a 95 s replay; 4 candidates x (staggered 158 s + simultaneous 95 s) in ~18 min.
FULL = {"time_scale": 10.0, "mem_scale": 4.0}
SHORT = {"time_scale": 48.0, "mem_scale": 2.0}


def params(short: bool, info: dict, names: list[str]) -> dict:
    s = SHORT if short else FULL
    return {"vms": VMS, "mem_gib": MEM_GIB, "cpus": CPUS, **s, "short": short, "candidates": names,
            "variants": VARIANTS, "candidate_flags": {n: rp.candidate_args(n)["flags"] for n in names},
            "nominal_s": info["duration_s"] / s["time_scale"], "peak_demand_gib": info["peak_kib"] * s["mem_scale"] / 2**20,
            "host_mem_gib": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
            "sample_s": 0.5, "trace": str(rp.TRACE_DIR), "trace_conversion": info}


def run_group(hvmm: str, name: str, variant: str, trace: Path, p: dict, progress: rp.Progress, label: str) -> list[dict]:
    """Starts the VMs at their offsets, finishes each when its replay is done; one record per VM."""
    offsets = [i * p["nominal_s"] / VMS if variant == "staggered" else 0.0 for i in range(VMS)]
    runs: list = [None] * VMS
    recs: list = [None] * VMS
    t0 = time.monotonic()
    deadline = t0 + max(offsets) + 3 * p["nominal_s"] + 120
    try:
        while any(r is None for r in recs):
            now = time.monotonic()
            for i in range(VMS):
                if runs[i] is None and recs[i] is None and now - t0 >= offsets[i]:
                    try:
                        runs[i] = rp.ReplayRun(hvmm, name, trace, p["time_scale"], p["mem_scale"], MEM_GIB, CPUS)
                    except Exception as e:
                        recs[i] = {"candidate": name, "error": f"{type(e).__name__}: {e}"}
                if runs[i] is not None and (runs[i].finished() or now > deadline):
                    recs[i] = runs[i].finish() if runs[i].finished() else {"candidate": name, "error": "timed out"}
                    runs[i].close()
                    runs[i] = None
            rss = sum(r.rss_now() for r in runs if r is not None)
            progress.show(f"{label} {name} {variant}: {time.monotonic() - t0:.0f} s, "
                          f"{sum(r is not None for r in runs)} VMs running, summed RSS {rss / 2**30:.2f} GiB")
            time.sleep(0.5)
    finally:
        for r in runs:
            if r is not None:
                r.close()
    for i, rec in enumerate(recs):
        rec.update({"vm": i, "variant": variant, "offset_s": offsets[i]})
    return recs


def run(hvmm: str, out_base: str, short: bool, only: list[str] | None = None) -> Path:
    d = results.result_dir("multivm", out_base)
    raw = d / "raw"
    raw.mkdir()
    trace, info = rp.make_trace(d)
    names = only or CANDIDATES
    p = params(short, info, names)
    results.write_json(d / "metadata.json", results.metadata(hvmm, p))
    print(f"multivm: results in {d}; {len(names)} candidates x {VARIANTS}, {VMS} VMs, {p['nominal_s']:.0f} s replay "
          f"(time scale {p['time_scale']:g}, memory scale {p['mem_scale']:g})", flush=True)
    progress = rp.Progress("multivm")
    rows, t_start, n = [], time.monotonic(), len(names) * len(VARIANTS)
    for i, (name, variant) in enumerate((c, v) for c in names for v in VARIANTS):
        recs = run_group(hvmm, name, variant, trace, p, progress, f"[{i + 1}/{n}]")
        progress.done()
        for rec in recs:
            base = raw / f"{name}_{variant}_vm{rec['vm']}"
            with open(f"{base}_rss.csv", "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["host_s", "rss_bytes"])
                w.writerows(rec.get("rss", []))
            results.write_json(Path(f"{base}.json"), rec)
        r = analysis.row(name, variant, recs)
        rows.append(r)
        print(f"multivm: [{i + 1}/{n}] {name} {variant}: " + (f"FAILED: {r['error']}" if r.get("error") else
              f"{r['summed_gib_min']:.2f} GiB·min summed, peak {r['peak_total_gib']:.2f} GiB"), flush=True)
    summary = analysis.summarize(rows, {**p, "wall_s": time.monotonic() - t_start})
    results.write_results(d, rows, summary, analysis.table(summary))
    return d


def load(d: Path) -> dict:
    return json.loads((d / "summary.json").read_text())


def load_group(d: Path, name: str, variant: str) -> list[dict]:
    return [json.loads(f.read_text()) for f in sorted((d / "raw").glob(f"{name}_{variant}_vm*.json"))]
