#!/usr/bin/env python3
"""Install latency of HyperAlloc, alone and under a resize storm (issue 12).

alone: an 8 GiB VM allocates and frees 3 GiB, is shrunk to 512 MiB and grown back, then allocates
       3 GiB again: most of it through installs, with no other host work running.
storm: an 8 GiB VM runs `churn` for --seconds on every vCPU with --auto-reclaim=100ms while this
       script resizes it between 3 GiB and 8 GiB back to back.

Prints, per run, the host's install_latency_us (status: handling time in the VMM) and the guest's
(its `stats` line: exit to resume, TSC), and the medians over --reps runs. Raw records go to
results/install_latency/<timestamp>/."""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib import results  # noqa: E402
from lib.vm import Vm  # noqa: E402

_GUEST = re.compile(r"install_latency_us p50=([\d.]+) p99=([\d.]+) max=([\d.]+)")


def guest_latency(text: str) -> dict | None:
    m = None
    for m in _GUEST.finditer(text):
        pass
    return {"p50": float(m[1]), "p99": float(m[2]), "max": float(m[3])} if m else None


def run_alone(hvmm: str, cpus: int) -> dict:
    wl = "alloc 3G; free; barrier; alloc 3G; stats; barrier"
    with Vm(hvmm, mem="8G", cpus=cpus, workload=wl) as vm:
        vm.wait_barrier(passed=0)
        shrink = vm.resize("512M")
        grow = vm.resize("8G")
        vm.cont()
        st = vm.wait_barrier(passed=1)
        vm.cont()
        code = vm.wait(timeout=120)
        out = vm.stdout()
    d = st["detail"]
    return {"mode": "alone", "exit": code, "host": d["install_latency_us"], "host_parts": d.get("install_parts_us"), "guest": guest_latency(out),
            "installs": d["installs"], "shrink_ms": shrink.get("elapsed_ms"), "grow_ms": grow.get("elapsed_ms"),
            "status": st, "guest_output": out}


def run_storm(hvmm: str, cpus: int, seconds: int) -> dict:
    wl = f"churn {seconds}s; stats; barrier"
    resizes: list[dict] = []
    with Vm(hvmm, mem="8G", cpus=cpus, workload=wl, auto_reclaim="100ms") as vm:
        stop = threading.Event()

        def storm():
            sizes = ["3G", "8G"]
            i = 0
            while not stop.is_set():
                r = vm.request({"cmd": "resize", "size": sizes[i % 2]})
                resizes.append({"size": sizes[i % 2], "ok": r.get("ok"), "elapsed_ms": r.get("elapsed_ms"),
                                "moved_bytes": r.get("moved_bytes")})
                i += 1

        t = threading.Thread(target=storm, daemon=True)
        t.start()
        try:
            st = vm.wait_barrier(passed=0, timeout=seconds + 120)
        finally:
            stop.set()
            t.join()
        vm.cont()
        code = vm.wait(timeout=60)
        out = vm.stdout()
    d = st["detail"]
    return {"mode": "storm", "exit": code, "host": d["install_latency_us"], "host_parts": d.get("install_parts_us"), "guest": guest_latency(out),
            "installs": d["installs"], "resizes": len(resizes), "resize_log": resizes, "status": st,
            "guest_output": out, "corrupted": ", 0 corrupted" not in out}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hvmm", default="build/hvmm")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--seconds", type=int, default=30, help="churn duration of the storm runs")
    ap.add_argument("--modes", default="alone,storm")
    ap.add_argument("--out", default="results")
    a = ap.parse_args()
    d = results.result_dir("install_latency", a.out)
    results.write_json(d / "metadata.json", results.metadata(a.hvmm, vars(a)))
    runs = []
    for rep in range(a.reps):
        for mode in a.modes.split(","):
            rec = run_alone(a.hvmm, a.cpus) if mode == "alone" else run_storm(a.hvmm, a.cpus, a.seconds)
            rec["rep"] = rep
            runs.append(rec)
            results.write_json(d / f"{mode}_r{rep}.json", rec)
            h, g = rec["host"], rec["guest"] or {}
            extra = f", {rec['resizes']} resizes" if mode == "storm" else f", shrink {rec['shrink_ms']:.1f} ms"
            print(f"{mode} rep {rep}: host p50/p99/max {h['p50']:.0f}/{h['p99']:.0f}/{h['max']:.0f} us, guest "
                  f"{g.get('p50', 0):.0f}/{g.get('p99', 0):.0f}/{g.get('max', 0):.0f} us, {rec['installs']} installs"
                  f"{extra}, exit {rec['exit']}", flush=True)
            if rec.get("host_parts"):
                print("   host parts p50/p99/max: " + ", ".join(
                    f"{k} {v['p50']:.0f}/{v['p99']:.0f}/{v['max']:.0f} us" for k, v in rec["host_parts"].items()),
                    flush=True)
    for mode in a.modes.split(","):
        rs = [r for r in runs if r["mode"] == mode]
        med = {side: {k: statistics.median((r[side] or {}).get(k, 0) for r in rs) for k in ("p50", "p99", "max")}
               for side in ("host", "guest")}
        print(f"{mode} median of {len(rs)}: host p50/p99/max {med['host']['p50']:.0f}/{med['host']['p99']:.0f}/"
              f"{med['host']['max']:.0f} us, guest {med['guest']['p50']:.0f}/{med['guest']['p99']:.0f}/"
              f"{med['guest']['max']:.0f} us")
    print(f"results in {d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
