#!/usr/bin/python3
"""The artifact's benchmark driver (ARCHITECTURE.md, "Benchmarks"), as in the reference's run.py:

    bench/run.py bench-plot inflate --short     # run, then draw the plots
    bench/run.py bench-plot compiling           # the kernel-build replay, every candidate (~20 min)
    bench/run.py bench-plot multivm --candidates hyperalloc,none-llfree   # a subset
    bench/run.py bench inflate                  # run only
    bench/run.py plot inflate [--dir DIR]       # redraw the plots of a result directory (default: newest)

Results: <out>/<benchmark>/<timestamp>/ with raw data (raw/), metadata.json, runs.json/.csv,
summary.json/.txt and the PNG plots. Uses Debian's /usr/bin/python3 (python3-matplotlib)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

ALL = ("inflate", "compiling", "multivm", "stream", "ftq")


def find_hvmm(given: str | None) -> str:
    candidates = [given] if given else [os.environ.get("HVMM")] + [str(p / "hvmm") for p in sorted(REPO.glob("build*/"))]
    for c in candidates:
        if c and Path(c).is_file() and os.access(c, os.X_OK):
            return str(Path(c).resolve())
    sys.exit(f"run.py: no hvmm binary {'at ' + given if given else 'found (set --hvmm PATH or $HVMM)'}")


def newest(out: Path, bench: str) -> Path:
    dirs = sorted(p for p in (out / bench).glob("*/") if (p / "summary.json").exists())
    if not dirs:
        sys.exit(f"run.py: no finished {bench} results under {out / bench}")
    return dirs[-1]


def build_limits(hvmm: str, want: Path) -> Path:
    """The inflate benchmark's host limits probe, built in hvmm's own build tree when it is missing
    (scripts/run.sh builds only hvmm); one line and exit 2 when that cannot be done."""
    build = Path(hvmm).resolve().parent
    cmd = ["cmake", "--build", str(build), "--target", "hvmm_limits", "-j2"]
    print(f"run.py: building the limits probe: {' '.join(cmd)}", flush=True)
    import subprocess
    try:
        ok = subprocess.run(cmd, capture_output=True, text=True, timeout=900).returncode == 0
    except (OSError, subprocess.SubprocessError):
        ok = False
    if not ok or not want.exists():
        sys.exit(f"run.py: the limits probe {want} is missing and `{' '.join(cmd)}` did not build it; "
                 "build it yourself or pass --limits PATH")
    return want


def run_or_find(args, name: str, run) -> Path:
    """bench / bench-plot: runs the benchmark (`run()` returns its result directory); plot: the
    directory to redraw (--dir, else the newest)."""
    if args.action in ("bench", "bench-plot"):
        return run()
    return Path(args.dir) if args.dir else newest(Path(args.out), name)


def draw(args, name: str, plots, d: Path, summary) -> None:
    if args.action in ("plot", "bench-plot"):
        for p in plots.draw(d, summary):
            print(f"{name}: plot {p}")


def run_inflate(args) -> int:
    from inflate import bench, plots

    def run() -> Path:
        hvmm = find_hvmm(args.hvmm)
        from lib import limits
        limits_bin = Path(args.limits) if args.limits else limits.default_path(hvmm)
        if not limits_bin.exists():
            limits_bin = build_limits(hvmm, limits_bin)
        return bench.run(hvmm, limits_bin, str(args.out), args.short)

    d = run_or_find(args, "inflate", run)
    rows, summary = bench.load(d)
    draw(args, "inflate", plots, d, summary)
    return 1 if any(r.get("error") for r in rows) else 0


def run_replay_bench(args, name: str) -> int:
    """compiling and multivm: the kernel-build trace replayed by every candidate (bench/compiling/,
    bench/multivm/); exit 1 when a candidate failed (it is in the table as FAILED)."""
    import importlib
    bench = importlib.import_module(f"{name}.bench")
    plots = importlib.import_module(f"{name}.plots")

    def run() -> Path:
        only = args.candidates.split(",") if args.candidates else None
        from lib.replay import CANDIDATES
        if only and (bad := [c for c in only if c not in CANDIDATES]):
            sys.exit(f"run.py: unknown candidate(s) {', '.join(bad)}; known: {', '.join(CANDIDATES)}")
        return bench.run(find_hvmm(args.hvmm), str(args.out), args.short, only)

    d = run_or_find(args, name, run)
    summary = bench.load(d)
    draw(args, name, plots, d, summary)
    return 1 if summary["failed"] else 0


def run_interference(args, kind: str) -> int:
    from interference import bench, plots
    d = run_or_find(args, kind, lambda: bench.run(find_hvmm(args.hvmm), kind, str(args.out), args.short))
    summary = bench.load(d)
    draw(args, kind, plots, d, summary)
    return 1 if any(r.get("error") for r in summary["rows"]) else 0


RUNNERS = {"inflate": run_inflate, "compiling": lambda a: run_replay_bench(a, "compiling"),
           "multivm": lambda a: run_replay_bench(a, "multivm"), "stream": lambda a: run_interference(a, "stream"),
           "ftq": lambda a: run_interference(a, "ftq")}


def main() -> int:
    ap = argparse.ArgumentParser(
        description="hvmm benchmarks (the HyperAlloc artifact's run.py). Results: <out>/<benchmark>/<timestamp>/ "
                    "(raw data, metadata.json, summary, plots).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="""actions:
  bench-plot   run the benchmark, then draw its plots
  bench        run only
  plot         redraw the plots of a result directory (--dir, default: the newest)

benchmarks (every mechanism side by side in one run; --short in brackets):
  inflate    shrink/grow latency and reuse after grow, 16 GiB VM, N = 4 and 12 GiB [N = 4, 2 reps]
  compiling  the kernel-build trace replayed in a 16 GiB VM; footprint in GiB*min per candidate
             [memory x4, time /30 instead of x8, /6]
  multivm    three replaying VMs, staggered and all at once; summed footprint [memory x2, time /48]
  stream     STREAM copy bandwidth while the VM is shrunk to 2 GiB and grown back, 16 GiB VM, 120 s
             [8 GiB, 40 s]
  ftq        FTQ work per 1 ms quantum under the same schedule [8 GiB, 40 s]
  all        every benchmark above, one after the other

Exit status: 0 when every candidate ran, 1 when one failed (it is in the table as FAILED).""")
    ap.add_argument("action", choices=("bench-plot", "bench", "plot"))
    ap.add_argument("benchmark", choices=ALL + ("all",))
    ap.add_argument("--short", action="store_true", help="fewer sizes and repetitions")
    ap.add_argument("--hvmm", help="the hvmm binary (default: $HVMM, else <repo>/build*/hvmm)")
    ap.add_argument("--limits", help="the hvmm_limits binary (default: beside hvmm in its build tree)")
    ap.add_argument("--out", default="results", help="results base directory (default: ./results)")
    ap.add_argument("--dir", help="plot: the result directory to redraw (default: the newest)")
    ap.add_argument("--candidates", help="compiling/multivm: comma-separated subset of the candidates (default: all)")
    args = ap.parse_args()

    wanted = ALL if args.benchmark == "all" else (args.benchmark,)
    status = 0
    for b in wanted:
        status = RUNNERS[b](args) or status
    return status


if __name__ == "__main__":
    sys.exit(main())
