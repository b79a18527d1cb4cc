#!/usr/bin/env python3
"""Reuse through reclaimed memory against first touch, measured side by side (issue 12).

Two VMs run at the same time, so both see the same moment of this host's drifting first-touch speed
(0.4-15 GiB/s between minutes): VM A allocates 90 % of never-used memory; VM B (HyperAlloc) first
allocated and freed that much, was shrunk to 512 MiB and grown back, and allocates 90 % again,
through installs of reclaimed frames. Both start their measured `alloc` at once (barriers). Prints
B / A per run and the median over --reps.

--variant picks what B is (default: reuse and control); variants given together run interleaved
(rep 0 of each, then rep 1, ...), so that they share the host's moments too:
  reuse        B reuses reclaimed memory through installs (the figure the issue asks for)
  no-populate  the same, but every install's populate fails on purpose (the HVMM_FAULT_INJECT test
               seam), so the install only clears the flag and the guest's touches fault the frame in:
               what reuse costs without the host populating for it
  control      B is a second first-touch VM doing exactly what A does: B / A is this method's own
               spread, the resolution any other variant's ratio has

--settle S waits S seconds between B's grow and the measured allocations. On this host every large
free is followed by ~40 s of slower memory (the outer hypervisor taking the freed memory back; a host
process freeing 5 GiB does it to an idle VM too): without a wait, both VMs measure inside it."""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib import guest_lines, results  # noqa: E402
from lib.vm import Vm  # noqa: E402

VARIANTS = ("reuse", "no-populate", "control")
PCT = "90%"
FIRST_TOUCH = f"barrier; alloc {PCT}; barrier"
REUSE = f"alloc {PCT}; free; barrier; barrier; alloc {PCT}; stats; barrier"


def start_b(hvmm: str, mem_gib: int, cpus: int, variant: str) -> Vm:
    if variant == "control":
        return Vm(hvmm, mem=f"{mem_gib}G", cpus=cpus, reclaim="none", workload=FIRST_TOUCH)
    seam = {"HVMM_FAULT_INJECT": "populate=EFAULT,every=1"} if variant == "no-populate" else None
    return Vm(hvmm, mem=f"{mem_gib}G", cpus=cpus, workload=REUSE, env=seam)


def one(hvmm: str, mem_gib: int, cpus: int, variant: str, settle: float) -> dict:
    touch = Vm(hvmm, mem=f"{mem_gib}G", cpus=cpus, reclaim="none", workload=FIRST_TOUCH)
    shrink = grow = st = None
    try:
        b = start_b(hvmm, mem_gib, cpus, variant)
        try:
            if variant != "control":
                b.wait_barrier(passed=0)
                shrink = b.resize("512M")
                grow = b.resize(f"{mem_gib}G")
                b.cont()
            time.sleep(settle)
            measured = 0 if variant == "control" else 1   # B's barrier before its measured alloc
            b.wait_barrier(passed=measured)
            touch.wait_barrier(passed=0)
            touch.cont()   # both measured allocations start now
            b.cont()
            st = b.wait_barrier(passed=measured + 1)
            touch.wait_barrier(passed=1)
            touch.cont()
            b.cont()
            touch.wait(timeout=120)
            b.wait(timeout=120)
            t_out, b_out = touch.stdout(), b.stdout()
        finally:
            b.close()
    finally:
        touch.close()
    t_alloc = guest_lines.steps(t_out, "alloc")[-1]
    b_alloc = guest_lines.steps(b_out, "alloc")[-1]
    d = (st or {}).get("detail", {})
    return {"variant": variant, "settle_s": settle, "first_touch_mib_s": t_alloc["mib_s"], "b_mib_s": b_alloc["mib_s"],
            "ratio": b_alloc["mib_s"] / t_alloc["mib_s"], "installs": d.get("installs"),
            "reinstalls": d.get("reinstalls"), "install_latency_us": d.get("install_latency_us"),
            "install_parts_us": d.get("install_parts_us"),
            "shrink_ms": (shrink or {}).get("elapsed_ms"), "grow_ms": (grow or {}).get("elapsed_ms"),
            "touch_output": t_out, "b_output": b_out}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hvmm", default="build/hvmm")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--config", action="append", help="MEM_GIB:CPUS (default 4:1 and 8:2)")
    ap.add_argument("--variant", action="append", choices=VARIANTS, help="what VM B is (default: reuse and control); repeatable")
    ap.add_argument("--settle", type=float, default=0, metavar="S",
                    help="seconds between B's grow and the measured allocations (default 0)")
    ap.add_argument("--out", default="results")
    a = ap.parse_args()
    configs = [tuple(int(x) for x in c.split(":")) for c in (a.config or ["4:1", "8:2"])]
    variants = a.variant or ["reuse", "control"]
    d = results.result_dir("reuse_side_by_side", a.out)
    results.write_json(d / "metadata.json", results.metadata(a.hvmm, vars(a)))
    for mem_gib, cpus in configs:
        ratios: dict[str, list[float]] = {v: [] for v in variants}
        for rep in range(a.reps):
            for v in variants:
                r = one(a.hvmm, mem_gib, cpus, v, a.settle)
                results.write_json(d / f"{mem_gib}g_{cpus}cpu_{v}_r{rep}.json", r)
                ratios[v].append(r["ratio"])
                lat = r["install_latency_us"] or {}
                print(f"{mem_gib} GiB, {cpus} vCPU, {v} rep {rep}: first touch {r['first_touch_mib_s']} MiB/s, "
                      f"B {r['b_mib_s']} MiB/s, B / first touch {r['ratio']:.2f}; installs {r['installs']}, "
                      f"install p50/p99/max {lat.get('p50')}/{lat.get('p99')}/{lat.get('max')} us", flush=True)
        for v, rs in ratios.items():
            print(f"{mem_gib} GiB, {cpus} vCPU, {v}: B / first touch median {statistics.median(rs):.2f} "
                  f"(min {min(rs):.2f}, max {max(rs):.2f}, {len(rs)} runs)", flush=True)
    print(f"results in {d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
