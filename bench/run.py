#!/usr/bin/python3
"""The artifact's benchmark driver (ARCHITECTURE.md, "Benchmarks"), as in the reference's run.py:

    bench/run.py bench-plot inflate --short     # run, then draw the plots
    bench/run.py bench-plot compiling           # the kernel-build replay, every candidate (~20 min)
    bench/run.py bench-plot multivm --candidates hyperalloc,none-llfree   # a subset
    bench/run.py bench inflate                  # run only
    bench/run.py plot inflate [--dir DIR]       # redraw the plots of a result directory (default: newest)
    bench/run.py bench-plot all --short         # every benchmark, then one index.md with every plot

Results: <out>/<benchmark>/<timestamp>/ with raw data (raw/), metadata.json, runs.json/.csv,
summary.json/.txt and the PNG plots. Uses Debian's /usr/bin/python3 (python3-matplotlib)."""
from __future__ import annotations

import argparse
import os
import sys
import time
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


def draw(args, name: str, plots, d: Path, summary) -> list[Path]:
    out = []
    if args.action in ("plot", "bench-plot"):
        for p in plots.draw(d, summary):
            print(f"{name}: plot {p}")
            out.append(p)
    return out


def outcome(name: str, d: Path, summary: dict, plots: list[Path], failed: list[str]) -> dict:
    """What `all` puts in its index; a benchmark's exit status is 1 when `failed` is not empty."""
    return {"benchmark": name, "dir": d, "summary": summary, "plots": plots, "failed": failed}


def run_inflate(args) -> dict:
    from inflate import bench, plots

    def run() -> Path:
        hvmm = find_hvmm(args.hvmm)
        from lib import limits
        limits_bin = Path(args.limits) if args.limits else limits.default_path(hvmm)
        if not limits_bin.exists():
            limits_bin = build_limits(hvmm, limits_bin)
        return bench.run(hvmm, limits_bin, str(args.out), args.short)

    d = run_or_find(args, "inflate", run)
    summary = bench.load(d)
    return outcome("inflate", d, summary, draw(args, "inflate", plots, d, summary), summary["failed"])


def run_replay_bench(args, name: str) -> dict:
    """compiling and multivm: the kernel-build trace replayed by every candidate (bench/compiling/,
    bench/multivm/); a failed candidate is in the table as FAILED."""
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
    return outcome(name, d, summary, draw(args, name, plots, d, summary), summary["failed"])


def run_interference(args, kind: str) -> dict:
    from interference import bench, plots
    d = run_or_find(args, kind, lambda: bench.run(find_hvmm(args.hvmm), kind, str(args.out), args.short))
    summary = bench.load(d)
    return outcome(kind, d, summary, draw(args, kind, plots, d, summary),
                   [r["candidate"] for r in summary["rows"] if r.get("error")])


RUNNERS = {"inflate": run_inflate, "compiling": lambda a: run_replay_bench(a, "compiling"),
           "multivm": lambda a: run_replay_bench(a, "multivm"), "stream": lambda a: run_interference(a, "stream"),
           "ftq": lambda a: run_interference(a, "ftq")}


def run_all(args) -> int:
    """Every benchmark, one after the other; a benchmark that stops with an error does not stop the
    others. The index is rewritten after each, so an interrupted run still has one."""
    from lib import index, results
    d = results.result_dir("all", args.out)
    meta = results.metadata(find_hvmm(args.hvmm) if args.action != "plot" else "", {"short": args.short})
    info = {"command": "bench/run.py " + " ".join(sys.argv[1:]), "date": meta["date"], "revision": meta["hvmm"]["git"],
            "host": f"{meta['host']['cpus']} CPUs, {meta['host']['mem_bytes'] / 2**30:.0f} GiB, kernel {meta['host']['kernel']}"}
    print(f"run.py: all benchmarks ({', '.join(ALL)}){' --short' if args.short else ''}; index in {d / 'index.md'}", flush=True)
    t_all = time.monotonic()
    outcomes = []
    for k, name in enumerate(ALL):
        print(f"run.py: [{k + 1}/{len(ALL)}] {name} started at {time.strftime('%H:%M:%S')} "
              f"({(time.monotonic() - t_all) / 60:.1f} min so far)", flush=True)
        t = time.monotonic()
        try:
            o = RUNNERS[name](args)
        except (Exception, SystemExit) as e:  # noqa: BLE001 - recorded in the index, the others still run
            o = {"benchmark": name, "error": f"{type(e).__name__}: {e}", "plots": [], "failed": []}
        o["wall_s"] = time.monotonic() - t
        outcomes.append(o)
        state = "ERROR: " + o["error"] if o.get("error") else ("FAILED: " + ", ".join(o["failed"]) if o["failed"] else "ok")
        print(f"run.py: [{k + 1}/{len(ALL)}] {name} {state} after {o['wall_s'] / 60:.1f} min", flush=True)
        index.write(d, outcomes, {**info, "wall_s": time.monotonic() - t_all})
    wall = time.monotonic() - t_all
    path = index.write(d, outcomes, {**info, "wall_s": wall})
    bad = [o["benchmark"] for o in outcomes if o.get("error") or o["failed"]]
    print(f"run.py: all done in {wall / 60:.1f} min; index {path}" + (f"; FAILED: {', '.join(bad)}" if bad else ""), flush=True)
    return 1 if bad else 0


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
  inflate    the reference's schedule, touched and untouched: per iteration touch VM-2 GiB, free, shrink
             to 2 GiB, wait, grow back, allocate VM-2 GiB twice (first reuse, then warm), each beside a
             VM allocating as much at the same moment; discard floors (hvmm_limits) in every wait;
             12 GiB VM (two at once must fit 24 GiB), 1 vCPU each, 5 iterations, the first dropped
             [8 GiB VM, 3 iterations]
  compiling  the kernel-build trace replayed in a 16 GiB VM; footprint in GiB*min per candidate
             [memory x4, time /30 instead of x8, /6]
  multivm    three replaying VMs, staggered and all at once; summed footprint [memory x2, time /48]
  stream     STREAM copy bandwidth while the VM is shrunk to 2 GiB and grown back, 16 GiB VM, 120 s
             [8 GiB, 40 s]
  ftq        FTQ work per 1 ms quantum under the same schedule [8 GiB, 40 s]
  all        every benchmark above, one after the other, then <out>/all/<timestamp>/index.md: each
             benchmark's status, wall time, plots and headline ratios beside the reference's
             [each benchmark's --short: 20.8 min here on 2026-12-02]

Exit status: 0 when every candidate ran, 1 when one failed (it is in the table as FAILED; with
`all`, also when a benchmark stopped with an error).""")
    ap.add_argument("action", choices=("bench-plot", "bench", "plot"))
    ap.add_argument("benchmark", choices=ALL + ("all",))
    ap.add_argument("--short", action="store_true", help="smaller VMs, scales and repetitions (see each benchmark)")
    ap.add_argument("--hvmm", help="the hvmm binary (default: $HVMM, else <repo>/build*/hvmm)")
    ap.add_argument("--limits", help="the hvmm_limits binary (default: beside hvmm in its build tree)")
    ap.add_argument("--out", default="results", help="results base directory (default: ./results)")
    ap.add_argument("--dir", help="plot: the result directory to redraw (default: the newest)")
    ap.add_argument("--candidates", help="compiling/multivm: comma-separated subset of the candidates (default: all)")
    args = ap.parse_args()

    if args.benchmark == "all":
        return run_all(args)
    return 1 if RUNNERS[args.benchmark](args)["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
