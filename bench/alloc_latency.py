#!/usr/bin/env python3
"""Allocator latency, host and guest in one run (issue 3): LLFree get+put pairs for orders 0 and 9
with 1 and 2 threads, beside a lock-protected free list — on the host (bench/alloc/alloc_bench) and
inside the built-in guest (`--workload bench-alloc`). Writes results/alloc_latency/<time>/."""
import argparse
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib.results import metadata, result_dir, write_json  # noqa: E402

ROW = re.compile(r"^(llfree|mutex free list|spinlock free list)\s+(\d+)\s+(\d+)\s+([\d.]+)\s+(\d+)", re.M)


def rows(text, where):
    return [{"where": where, "allocator": m[1], "order": int(m[2]), "threads": int(m[3]), "ns_per_pair": float(m[4]),
             "failures": int(m[5])} for m in ROW.finditer(text)]


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--build", default="build", help="build directory with hvmm and bench/alloc/alloc_bench")
    ap.add_argument("--out", default="results")
    ap.add_argument("--ms", type=int, default=300, help="host: milliseconds per cell")
    a = ap.parse_args()
    build = Path(a.build)
    host = subprocess.run([str(build / "bench/alloc/alloc_bench"), str(a.ms)], capture_output=True, text=True, check=True)
    guest = subprocess.run([str(build / "hvmm"), "run", "--mem", "2G", "--cpus", "2", "--quiet", "--reclaim", "none",
                            "--workload", "bench-alloc"], capture_output=True, text=True, timeout=300)
    if guest.returncode != 0:
        sys.exit(f"guest benchmark failed ({guest.returncode}): {guest.stderr}")
    data = rows(host.stdout, "host") + rows(guest.stdout, "guest")
    out = result_dir("alloc_latency", a.out)
    write_json(out / "results.json", data)
    write_json(out / "metadata.json", metadata(str(build / "hvmm"), {"host_ms_per_cell": a.ms, "guest_mem": "2G"}))
    (out / "host.txt").write_text(host.stdout)
    (out / "guest.txt").write_text(guest.stdout)
    print(f"{'where':6} {'allocator':20} {'order':>5} {'threads':>7} {'ns/pair':>9}")
    for r in data:
        print(f"{r['where']:6} {r['allocator']:20} {r['order']:5} {r['threads']:7} {r['ns_per_pair']:9.1f}")
    print(f"results: {out}")


if __name__ == "__main__":
    main()
