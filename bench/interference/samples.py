"""The interference benchmarks' samples (guest/interference_steps.cpp output) turned into series and
figures. Pure functions: bench.py feeds them guest output, tests/bench feeds them synthetic lines."""
from __future__ import annotations

import math
import re

_STREAM = re.compile(r"^stream: cpu=(\d+) t_us=(\d+) bytes=(\d+) us=(\d+)$")
_FTQ = re.compile(r"^ftq: cpu=(\d+) q=(\d+):((?: \d+)+)$")
_FTQ_SETUP = re.compile(r"^ftq: setup cpus=(\d+) quantum_us=(\d+) quanta=(\d+)$")


def stream_passes(text: str) -> list[tuple[int, float, int, float]]:
    """Every STREAM pass: (cpu, end s, bytes, duration s), times since the guest's 'stream: running'."""
    out = []
    for line in text.splitlines():
        if m := _STREAM.match(line.strip()):
            out.append((int(m[1]), int(m[2]) / 1e6, int(m[3]), int(m[4]) / 1e6))
    return out


def stream_series(passes, duration_s: float, bin_s: float) -> list[float]:
    """Copy bandwidth of all CPUs together, GB/s (10^9 bytes, as STREAM reports), per time bin.
    A pass's bytes are spread evenly over the time it ran, so a bin holds exactly what was copied in it."""
    nbins = max(1, int(math.ceil(duration_s / bin_s)))
    acc = [0.0] * nbins
    for _, end, nbytes, dur in passes:
        start = max(0.0, end - dur)
        if dur <= 0 or end <= 0:
            continue
        rate = nbytes / dur
        b = int(start / bin_s)
        while b < nbins and b * bin_s < end:
            lo, hi = max(start, b * bin_s), min(end, (b + 1) * bin_s)
            if hi > lo:
                acc[b] += rate * (hi - lo)
            b += 1
    return [a / bin_s / 1e9 for a in acc]


def ftq_counts(text: str) -> tuple[float, list[int]]:
    """FTQ: (quantum s, work units per quantum summed over the CPUs)."""
    quantum, quanta = 0.0, 0
    per_cpu: dict[int, dict[int, int]] = {}
    for line in text.splitlines():
        line = line.strip()
        if m := _FTQ_SETUP.match(line):
            quantum, quanta = int(m[2]) / 1e6, int(m[3])
        elif m := _FTQ.match(line):
            cpu, first = int(m[1]), int(m[2])
            d = per_cpu.setdefault(cpu, {})
            for i, n in enumerate(m[3].split()):
                d[first + i] = int(n)
    n = quanta or max((max(d) + 1 for d in per_cpu.values() if d), default=0)
    return quantum, [sum(d.get(q, 0) for d in per_cpu.values()) for q in range(n)]


def bin_counts(counts: list[int], quantum_s: float, bin_s: float) -> list[float]:
    """FTQ work per second, per time bin (mean over the quanta in it)."""
    per = max(1, int(round(bin_s / quantum_s))) if quantum_s > 0 else 1
    return [sum(counts[i:i + per]) / (len(counts[i:i + per]) * quantum_s) for i in range(0, len(counts), per)
            if counts[i:i + per]]


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); 0 for no values."""
    if not values:
        return 0.0
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(math.ceil(p / 100 * len(s))) - 1))
    return s[k]


def figures(series: list[float], bin_s: float, window: tuple[float, float] | None) -> dict:
    """Mean and 1st percentile over the whole run, and inside `window` (the resize period: from the
    shrink's start to the grow's end plus a bin) and before it (the VM's own baseline, measured
    seconds earlier in the same VM)."""
    def sel(lo, hi):
        return [v for i, v in enumerate(series) if lo <= i * bin_s and (i + 1) * bin_s <= hi]
    out = {"mean": sum(series) / len(series) if series else 0.0, "p1": percentile(series, 1), "bins": len(series),
           "total": sum(series) * bin_s}
    if window:
        before, during = sel(0, window[0]), sel(window[0], window[1])
        out["before_mean"] = sum(before) / len(before) if before else None
        out["before_p1"] = percentile(before, 1) if before else None
        out["during_mean"] = sum(during) / len(during) if during else None
        out["during_p1"] = percentile(during, 1) if during else None
        out["during_min"] = min(during) if during else None
    return out


def time_lost_s(total: float, baseline_total: float, per_s_baseline: float) -> float | None:
    """Seconds of work the candidate lost against the baseline: (baseline's work − its work) at the
    baseline's rate."""
    if not baseline_total or not per_s_baseline:
        return None
    return (baseline_total - total) / per_s_baseline
