#!/usr/bin/env python3
"""Reuse through reclaimed memory against first touch, measured side by side (issue 12).

Two VMs run at the same time, so both see the same moment of this host's drifting first-touch speed
(0.4-15 GiB/s between minutes): VM A allocates 90 % of never-used memory; VM B (HyperAlloc) first
allocated and freed that much, was shrunk to 512 MiB and grown back, and allocates 90 % again,
through installs of reclaimed frames. Both start their measured `alloc` at once (barriers). Prints
reuse / first touch per run and the median over --reps."""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib import guest_lines, results  # noqa: E402
from lib.vm import Vm  # noqa: E402


def one(hvmm: str, mem_gib: int, cpus: int) -> dict:
    pct = "90%"
    touch = Vm(hvmm, mem=f"{mem_gib}G", cpus=cpus, reclaim="none", workload=f"barrier; alloc {pct}; barrier")
    try:
        reuse = Vm(hvmm, mem=f"{mem_gib}G", cpus=cpus,
                   workload=f"alloc {pct}; free; barrier; barrier; alloc {pct}; stats; barrier")
        try:
            reuse.wait_barrier(passed=0)
            shrink = reuse.resize("512M")
            grow = reuse.resize(f"{mem_gib}G")
            reuse.cont()
            reuse.wait_barrier(passed=1)
            touch.wait_barrier(passed=0)
            touch.cont()   # both measured allocations start now
            reuse.cont()
            st = reuse.wait_barrier(passed=2)
            touch.wait_barrier(passed=1)
            touch.cont()
            reuse.cont()
            touch.wait(timeout=120)
            reuse.wait(timeout=120)
            t_out, r_out = touch.stdout(), reuse.stdout()
        finally:
            reuse.close()
    finally:
        touch.close()
    t_alloc = guest_lines.steps(t_out, "alloc")[-1]
    r_alloc = guest_lines.steps(r_out, "alloc")[-1]
    d = st["detail"]
    return {"first_touch_mib_s": t_alloc["mib_s"], "reuse_mib_s": r_alloc["mib_s"],
            "ratio": r_alloc["mib_s"] / t_alloc["mib_s"], "installs": d["installs"],
            "reinstalls": d.get("reinstalls"), "install_latency_us": d.get("install_latency_us"),
            "shrink_ms": shrink.get("elapsed_ms"), "grow_ms": grow.get("elapsed_ms"),
            "touch_output": t_out, "reuse_output": r_out}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hvmm", default="build/hvmm")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--config", action="append", help="MEM_GIB:CPUS (default 4:1 and 8:2)")
    ap.add_argument("--out", default="results")
    a = ap.parse_args()
    configs = [tuple(int(x) for x in c.split(":")) for c in (a.config or ["4:1", "8:2"])]
    d = results.result_dir("reuse_side_by_side", a.out)
    results.write_json(d / "metadata.json", results.metadata(a.hvmm, vars(a)))
    for mem_gib, cpus in configs:
        ratios = []
        for rep in range(a.reps):
            r = one(a.hvmm, mem_gib, cpus)
            results.write_json(d / f"{mem_gib}g_{cpus}cpu_r{rep}.json", r)
            ratios.append(r["ratio"])
            print(f"{mem_gib} GiB, {cpus} vCPU, rep {rep}: first touch {r['first_touch_mib_s']} MiB/s, reuse "
                  f"{r['reuse_mib_s']} MiB/s ({r['installs']} installs), reuse / first touch {r['ratio']:.2f}", flush=True)
        print(f"{mem_gib} GiB, {cpus} vCPU: reuse / first touch median {statistics.median(ratios):.2f} "
              f"(min {min(ratios):.2f}, max {max(ratios):.2f}, {len(ratios)} runs)", flush=True)
    print(f"results in {d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
