"""multivm: summed host RSS of the VMs of one run (candidate x variant), the summary and its table."""
from __future__ import annotations

from lib import replay as rp

GIB = 1 << 30


def held(series: list[tuple[float, float]], t: float) -> float:
    """A VM's value at t: 0 before its first and after its last sample (not running), else the last
    sample at or before t."""
    if not series or t < series[0][0] or t > series[-1][0]:
        return 0.0
    return rp.value_at(series, t)


def ideal_series(rec: dict) -> list[tuple[float, float]]:
    return [(ns / 1e9, b) for ns, _, b in (rec.get("replay") or {}).get("samples", [])]


def summed(recs: list[dict], step: float = 0.5) -> dict:
    """A common time grid over all VMs' replays: per-VM RSS, summed RSS and summed ideal."""
    starts = [r["replay"]["start"]["host_ns"] / 1e9 for r in recs]
    ends = [r["replay"]["done"]["host_ns"] / 1e9 for r in recs]
    t0, t1 = min(starts), max(ends)
    grid = [t0 + i * step for i in range(int((t1 - t0) / step) + 1)] + [t1]
    per_vm = [[held(r["rss"], t) for t in grid] for r in recs]
    ideal = [[held(ideal_series(r), t) for t in grid] for r in recs]
    return {"t0": t0, "t": [t - t0 for t in grid], "per_vm": per_vm, "total": [sum(c) for c in zip(*per_vm)],
            "ideal_total": [sum(c) for c in zip(*ideal)], "starts": [s - t0 for s in starts], "ends": [e - t0 for e in ends]}


def integral(ts: list[float], vs: list[float]) -> float:
    return sum((b - a) * v for a, b, v in zip(ts, ts[1:], vs)) / GIB / 60


def row(name: str, variant: str, recs: list[dict]) -> dict:
    r = {"candidate": name, "variant": variant}
    errors = [f"VM {i}: {x['error']}" for i, x in enumerate(recs) if x.get("error")]
    if errors:
        return {**r, "error": "; ".join(errors)}
    s = summed(recs)
    r.update({
        "summed_gib_min": integral(s["t"], s["total"]),
        "ideal_summed_gib_min": integral(s["t"], s["ideal_total"]),
        "peak_total_gib": max(s["total"]) / GIB,
        "per_vm_peak_gib": [max(v) / GIB for v in s["per_vm"]],
        "per_vm_gib_min": [integral(s["t"], v) for v in s["per_vm"]],
        "wall_s": s["t"][-1],
        "replay_s": [x["replay"]["done"]["wall_ms"] / 1000 for x in recs],
        "vmm_cpu_s": [x.get("vmm_cpu_s") for x in recs],
        "max_lag_s": max(x["replay"]["done"]["max_lag_ms"] for x in recs) / 1000,
    })
    return r


def summarize(rows: list[dict], params: dict) -> dict:
    for variant in {r["variant"] for r in rows}:
        ok = {r["candidate"]: r for r in rows if r["variant"] == variant and not r.get("error")}
        none, hyp = ok.get("none-llfree"), ok.get("hyperalloc")
        for r in ok.values():
            if none:
                r["saving_vs_none"] = 1 - r["summed_gib_min"] / none["summed_gib_min"]
            if hyp:
                r["ratio_to_hyperalloc"] = r["summed_gib_min"] / hyp["summed_gib_min"]
            r["ratio_to_ideal"] = r["summed_gib_min"] / r["ideal_summed_gib_min"] if r["ideal_summed_gib_min"] else None
    return {"params": params, "rows": rows,
            "failed": [f"{r['candidate']} ({r['variant']})" for r in rows if r.get("error")]}


def table(summary: dict) -> str:
    p = summary["params"]
    lines = [f"multivm: {p['vms']} VMs of {p['mem_gib']} GiB, {p['cpus']} vCPUs each, kernel-build replay, time scale "
             f"{p['time_scale']:g} (replay {p['nominal_s']:.0f} s), memory scale {p['mem_scale']:g} (peak demand "
             f"{p['peak_demand_gib']:.2f} GiB per VM); staggered = started {p['nominal_s'] / 3:.0f} s apart",
             f"{'candidate':20} {'variant':12} {'sum GiB·min':>11} {'ideal':>6} {'vs none':>7} {'x hyp':>6} "
             f"{'peak total':>10}  per-VM peak GiB"]
    for r in summary["rows"]:
        if r.get("error"):
            lines.append(f"{r['candidate']:20} {r['variant']:12} FAILED: {r['error'][:200]}")
            continue
        sv = r.get("saving_vs_none")
        lines.append(f"{r['candidate']:20} {r['variant']:12} {r['summed_gib_min']:11.2f} {r['ideal_summed_gib_min']:6.2f} "
                     f"{'-' if sv is None else f'{-sv * 100 + 0.0:+.0f}%':>7} {r.get('ratio_to_hyperalloc') or 0:6.2f} "
                     f"{r['peak_total_gib']:10.2f}  {' '.join(f'{v:.2f}' for v in r['per_vm_peak_gib'])}")
    none = [r["peak_total_gib"] for r in summary["rows"] if r["candidate"] == "none-llfree" and not r.get("error")]
    lines.append(f"host memory {p['host_mem_gib']:.1f} GiB; without reclamation the VMs peaked at "
                 + (f"{max(none):.2f} GiB summed ({max(none) / p['host_mem_gib'] * 100:.0f} % of it)" if none else
                    "? (none-llfree did not run)") + f"; the memory scale ({p['mem_scale']:g}) is chosen so that "
                 "this fits with room to spare")
    lags = [r["max_lag_s"] for r in summary["rows"] if not r.get("error")]
    if lags and max(lags) > 0.05 * p["nominal_s"]:
        lines.append(f"WARNING: a guest fell up to {max(lags):.1f} s behind the trace (more than 5 % of the replay): "
                     "the machine was too busy for these scales")
    if summary["failed"]:
        lines.append(f"FAILED: {', '.join(summary['failed'])}")
    return "\n".join(lines)


# The reference's multivm (issue 10, "Why": three staggered VMs building clang): the summed footprint's
# saving against no reclamation.
REFERENCE = {"saving_vs_none": {"hyperalloc": 0.42, "balloon-fpr-buddy": 0.16}}
GOAL_SAVING = 0.45  # issue 10: HyperAlloc's summed footprint >= 45 % below no reclamation


def headlines(summary: dict) -> list[dict]:
    """The index's rows (bench/lib/index.py): each candidate's saving against none-llfree, per variant."""
    rows = []
    for r in summary["rows"]:
        if r["candidate"] == "none-llfree":
            continue
        ref = REFERENCE["saving_vs_none"].get(r["candidate"]) if r["variant"] == "staggered" else None
        rows.append({"figure": f"summed GiB·min saving vs none, {r['candidate']} ({r['variant']})",
                     "hvmm": None if r.get("error") else r.get("saving_vs_none"), "reference": ref,
                     "note": ("FAILED" if r.get("error") else
                              f"goal >= {GOAL_SAVING}" if r["candidate"] == "hyperalloc" and r["variant"] == "staggered" else "")})
    return rows
