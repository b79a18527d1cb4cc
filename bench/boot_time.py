#!/usr/bin/env python3
"""Boot time of hvmm: whole-process wall time of `hvmm run --mem 16G --cpus 2 --workload "exit 7"`.

One warm-up run, then N measured runs (each must exit with status 7). Prints a table and writes
results.json (every sample, median/min/max, metadata) to results/boot_time/<timestamp>/.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
EXPECTED_STATUS = 7
TIMEOUT_S = 60


def hvmm_args(hvmm, mem, cpus):
    return [hvmm, "run", "--mem", mem, "--cpus", str(cpus), "--workload", f"exit {EXPECTED_STATUS}"]


def one_run(cmd):
    """Wall time in seconds of one hvmm process, from spawn to reap."""
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT_S)
    dt = time.perf_counter() - t0
    if p.returncode != EXPECTED_STATUS:
        sys.exit(f"boot_time: {' '.join(cmd)} exited with {p.returncode}, expected {EXPECTED_STATUS}\n"
                 f"stdout: {p.stdout.decode(errors='replace')}\nstderr: {p.stderr.decode(errors='replace')}")
    return dt


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def git_rev():
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hvmm", default=str(REPO / "build" / "hvmm"), help="hvmm binary (default: build/hvmm)")
    ap.add_argument("--runs", type=int, default=10, help="measured runs after one warm-up (default: 10)")
    ap.add_argument("--mem", default="16G", help="guest RAM (default: 16G)")
    ap.add_argument("--cpus", type=int, default=2, help="vCPUs (default: 2)")
    ap.add_argument("--out", default=str(REPO / "results" / "boot_time"), help="results root")
    a = ap.parse_args()
    if a.runs < 1:
        ap.error("--runs must be at least 1")
    if not os.access(a.hvmm, os.X_OK):
        ap.error(f"--hvmm {a.hvmm}: not an executable file (build it: cmake --build build --target hvmm)")

    cmd = hvmm_args(a.hvmm, a.mem, a.cpus)
    one_run(cmd)  # warm-up: page cache, KVM module state
    samples = [one_run(cmd) for _ in range(a.runs)]

    ms = [s * 1e3 for s in samples]
    summary = {"median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms),
               "mean_ms": statistics.fmean(ms), "runs": len(ms)}
    now = datetime.datetime.now(datetime.timezone.utc)
    meta = {
        "benchmark": "boot_time",
        "command": cmd,
        "expected_status": EXPECTED_STATUS,
        "date": now.isoformat(timespec="seconds"),
        "kernel": platform.release(),
        "cpu_model": cpu_model(),
        "host_cpus": os.cpu_count(),
        "hvmm_git_rev": git_rev(),
        "hvmm_binary": os.path.abspath(a.hvmm),
        "hvmm_binary_mtime": datetime.datetime.fromtimestamp(os.path.getmtime(a.hvmm),
                                                             datetime.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
    }
    out_dir = Path(a.out) / now.strftime("%Y%m%dT%H%M%SZ")
    out_dir.mkdir(parents=True, exist_ok=False)
    (out_dir / "results.json").write_text(json.dumps({"meta": meta, "summary": summary, "samples_ms": ms},
                                                     indent=2) + "\n")

    print(f"hvmm boot time: {' '.join(cmd[1:])}  ({len(ms)} runs after 1 warm-up)")
    print(f"{'median':>10} {'min':>10} {'max':>10} {'mean':>10}")
    print(f"{summary['median_ms']:>8.1f}ms {summary['min_ms']:>8.1f}ms {summary['max_ms']:>8.1f}ms "
          f"{summary['mean_ms']:>8.1f}ms")
    print(f"results: {out_dir}/results.json")


if __name__ == "__main__":
    main()
