#!/usr/bin/python3
"""Measures virtio-mem's automatic mode (the reference's grow/shrink policy) for a few periods and
steps, to state what the defaults do (README, "Reclamation").

An 8 GiB VM (1 GiB boot memory) idles, allocates 3 GiB in 4 KiB blocks (the allocation waits for
plugs when it runs out), frees it and idles again. Per configuration, interleaved repetitions:
  - alloc_ms: how long the 3 GiB allocation took (what waiting for plugs costs the guest);
  - react_s: from the guest's `free` line to host RSS below 1.5 GiB;
  - gib_s: the footprint (integral of RSS) over the whole run;
  - rss_idle_gib: RSS at the end.
Writes results/virtio_mem_auto/<timestamp>/{metadata,runs,summary}.json and prints a table.

  bench/virtio_mem_auto.py [--hvmm PATH] [--reps N]
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib import results  # noqa: E402
from lib import vm as vm_lib  # noqa: E402

GIB = 1 << 30
WORKLOAD = "sleep 10s; alloc 3G; free; sleep 12s"
CONFIGS = [("1s", "512M"), ("500ms", "512M"), ("1s", "256M"), ("2s", "1G")]  # first: the defaults for 8G
RSS_LIMIT = 1.5 * GIB


def one_run(hvmm: str, period: str, step: str) -> dict:
    with vm_lib.Vm(hvmm, mem="8G", cpus=2, workload=WORKLOAD, reclaim="virtio-mem", auto_reclaim=period,
                   extra=["--virtio-mem-boot", "1G", "--virtio-mem-step", step], sample_period=0.05) as vm:
        t_free = None
        while vm.proc.poll() is None:
            if t_free is None and re.search(r"^free:", vm.stdout(), re.M):
                t_free = time.monotonic() - vm.rss.t0
            time.sleep(0.05)
        rc = vm.proc.returncode
        t_end = time.monotonic() - vm.rss.t0
        vm.rss.stop()
        out = vm.stdout()
        m = re.search(r"^alloc: \d+ bytes in 4 KiB blocks, ([\d.]+) ms", out, re.M)
        react = None
        if t_free is not None:
            below = [t for t, b in vm.rss.samples if t >= t_free and b < RSS_LIMIT]
            react = below[0] - t_free if below else None
        return {"period": period, "step": step, "exit_code": rc, "alloc_ms": float(m[1]) if m else None,
                "react_s": react, "gib_s": vm.rss.gib_minutes() * 60, "peak_gib": vm.rss.peak() / GIB,
                # 1 s before the exit was seen: the idle end of the workload, not the teardown.
                "rss_idle_gib": next((b / GIB for t, b in reversed(vm.rss.samples) if t <= t_end - 1.0), None),
                "rss_samples": vm.rss.samples,
                "error": None if rc == 0 and m else f"exit {rc}: {vm.stderr()[-300:]} {out[-300:]}"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hvmm", default=str(Path(__file__).resolve().parents[1] / "build" / "hvmm"))
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--out", default="results")
    a = ap.parse_args()
    d = results.result_dir("virtio_mem_auto", a.out)
    results.write_json(d / "metadata.json", results.metadata(a.hvmm, {"workload": WORKLOAD, "configs": CONFIGS,
                                                                       "reps": a.reps, "mem": "8G", "boot": "1G"}))
    runs = []
    for rep in range(a.reps):
        for period, step in CONFIGS:  # interleaved: the host's speed drifts between minutes
            print(f"virtio_mem_auto: rep {rep + 1}/{a.reps}, period {period}, step {step} ...", flush=True)
            r = one_run(a.hvmm, period, step)
            if r["error"]:
                print(f"virtio_mem_auto: FAILED: {r['error']}", file=sys.stderr, flush=True)
            runs.append(r)
    results.write_json(d / "runs.json", runs)  # with every run's RSS samples [(t_s, bytes)]
    summary, failed = [], 0
    print(f"{'period':>7}{'step':>6}{'alloc 3G ms':>13}{'react s':>9}{'GiB*s':>8}{'peak GiB':>10}{'idle GiB':>10}  runs")
    for period, step in CONFIGS:
        rs = [r for r in runs if r["period"] == period and r["step"] == step and not r["error"]]
        failed += sum(1 for r in runs if r["period"] == period and r["step"] == step and r["error"])

        def med(k):
            v = [r[k] for r in rs if r[k] is not None]
            return statistics.median(v) if v else None
        row = {"period": period, "step": step, **{k: med(k) for k in ("alloc_ms", "react_s", "gib_s", "peak_gib",
                                                                         "rss_idle_gib")}, "runs": len(rs)}
        summary.append(row)
        f = lambda v, s: "-" if v is None else format(v, s)  # noqa: E731
        print(f"{period:>7}{step:>6}{f(row['alloc_ms'], '.0f'):>13}{f(row['react_s'], '.1f'):>9}"
              f"{f(row['gib_s'], '.0f'):>8}{f(row['peak_gib'], '.2f'):>10}{f(row['rss_idle_gib'], '.2f'):>10}  {len(rs)}")
    results.write_json(d / "summary.json", summary)
    print(f"virtio_mem_auto: results in {d}; medians of {a.reps} interleaved runs; failed runs: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
