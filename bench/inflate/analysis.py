"""From raw records (schedule.py) to figures: one flat row per iteration, medians and ranges per
candidate (mechanism x variant) over the kept iterations, the checks, the table and the headlines."""
from __future__ import annotations

import statistics

from lib import guest_lines

GIB = 1 << 30
MIB = 1 << 20
FRAME = 2 * MIB
EXIT_US_ASSUMED = 14.0  # one port-I/O exit round trip on this machine (ARCHITECTURE.md, "The built-in guest"); not measured per run

MECHANISMS = ("hyperalloc", "balloon", "balloon-huge", "virtio-mem")
VARIANTS = ("touched", "untouched")
DROPPED = 1  # the first iteration warms the machine and the guest's frames up: reported, not summarized

# The reference's inflate (a 20 GiB VM shrunk by 18 GiB to 2 GiB, other hardware): shrink ms and grow ms
# as the README quotes them ("Benchmarks"); the first allocation after grow in GiB/s is carried over
# from this module's earlier version (neither the issue nor the README quotes it). Context, not a target.
REFERENCE = {"hyperalloc": {"shrink_ms": 58, "grow_ms": 2.35, "reuse_gib_s": 3.9},
             "balloon-huge": {"shrink_ms": 147, "grow_ms": 61, "reuse_gib_s": 4.3},
             "virtio-mem": {"shrink_ms": 580, "grow_ms": 197, "reuse_gib_s": 4.2},
             "balloon": {"shrink_ms": 21000, "grow_ms": 8500, "reuse_gib_s": 0.97}}
REFERENCE_SHRUNK_GIB = 18

# Goals of issues 4, 11 and 12, applied to HyperAlloc.
GOAL_SHRINK_OF_RAW = 0.8
GOAL_SHRINK_OF_GUEST_MAPPED = 0.9
GOAL_GROW_US_PER_FRAME = 1.0
GOAL_REUSE_OF_FIRST_TOUCH = 0.9
SHRINK_PARTS = ("residency", "cas_walk", "discard", "other")  # the resize reply's shrink_parts_ms

# The discard floors hvmm_limits measures in each wait: row key -> (JSON path, label).
FLOORS = {"raw": (("madvise_dontneed_guest_mapped", "raw_gib_s"), "raw madvise, one call"),
          "raw_2mib": (("madvise_dontneed_2mib_steps", "gib_s"), "raw madvise, 2 MiB per call"),
          "guest_mapped": (("madvise_dontneed_guest_mapped", "gib_s"), "guest-mapped madvise"),
          "raw_4kib": (("madvise_dontneed_4kib_steps", "gib_s"), "raw madvise, 4 KiB per call")}

# What counts as "every reused frame came from reclaimed memory": the first reuse made the host back
# at least this share of it anew (RSS grew by it), and with HyperAlloc as many frames were reinstalled
# and none was a first-touch install (a frame the host never had).
FROM_RECLAIMED_MIN = 0.97
# Repetitions of a ratio whose range is wider than this share of their median disagree by more than
# the benchmark resolves (the goals above are 10-20 % margins); so does a range on both sides of a goal.
SPREAD_MAX = 0.20
# The compared ratios checked for it (the other floors' ratios are printed with their ranges too).
RATIOS = {"shrink_of_raw": GOAL_SHRINK_OF_RAW, "shrink_of_guest_mapped": GOAL_SHRINK_OF_GUEST_MAPPED,
          "reuse1_over_first_touch": GOAL_REUSE_OF_FIRST_TOUCH, "reuse2_over_warm": None}


def _floor(floors: dict | None, key: str) -> float | None:
    (probe, field), _ = FLOORS[key]
    return (((floors or {}).get(probe) or {}).get(field) or {}).get("median")


def _delta(after: dict, before: dict, key: str):
    a, b = (after or {}).get("detail", {}).get(key), (before or {}).get("detail", {}).get(key)
    return a - b if a is not None and b is not None else None


def _rate(step: dict | None) -> float | None:
    return step["bytes"] / GIB / (step["ms"] / 1e3) if step and step["ms"] else None


def _ratio(a, b):
    return a / b if a is not None and b else None


def iteration_rows(rec: dict) -> list[dict]:
    """One flat row per iteration of one VM's record; a record that failed before its first iteration
    gives one row with the error."""
    base = {"mechanism": rec["mechanism"], "variant": rec["variant"], "mem_gib": rec.get("mem_gib"),
            "x_gib": rec.get("x_gib")}
    iters = rec.get("iters") or []
    if not iters:
        return [{**base, "iteration": None, "kept": False, "error": rec.get("error") or "no iteration finished"}]
    steps = rec.get("guest") or guest_lines.parse(rec.get("guest_output", ""))
    allocs = [s for s in steps if s["step"] == "alloc"]
    verifies = [s for s in steps if s["step"] == "verify"]
    rows = []
    for it in iters:
        i = it["iteration"]
        rows.append(_iteration_row(rec, base, it, allocs[3 * i:3 * i + 3], verifies[i] if i < len(verifies) else None))
    if rec.get("error"):  # the iterations that finished stand; the candidate is reported as failed
        rows.append({**base, "iteration": None, "kept": False, "error": rec["error"]})
    return rows


def _iteration_row(rec: dict, base: dict, it: dict, allocs: list[dict], verify: dict | None) -> dict:
    i, x = it["iteration"], rec["x_gib"]
    frames = x * GIB // FRAME
    rss, st = it["rss"], it["status"]
    shrink, grow = it["shrink"], it["grow"]
    r = {**base, "iteration": i, "kept": i >= DROPPED, "error": None,
         "shrink_ms": shrink["elapsed_ms"], "shrink_wall_ms": shrink["wall_ms"],
         "grow_ms": grow["elapsed_ms"], "grow_wall_ms": grow["wall_ms"],
         "grow_us_per_frame": grow["elapsed_ms"] * 1e3 / frames if grow["elapsed_ms"] is not None else None,
         "rss_before_shrink_gib": rss["before_shrink"] / GIB, "rss_after_shrink_gib": rss["after_shrink"] / GIB,
         "rss_discarded_gib": (rss["before_shrink"] - rss["after_shrink"]) / GIB,
         **{f"shrink_{p}_ms": (shrink.get("reply") or {}).get("shrink_parts_ms", {}).get(p) for p in SHRINK_PARTS}}
    if rec["variant"] != "touched":
        return r
    # The shrink moves x GiB (VM - 2 GiB), all touched: its rate against each floor's for the same bytes.
    r["shrink_gib_s"] = x / (r["shrink_ms"] / 1e3) if r["shrink_ms"] else None
    floors = it.get("floors") or {}
    if floors.get("error"):
        r["floors_error"] = floors["error"]
    for k in FLOORS:
        g = _floor(floors, k)
        r[f"floor_{k}_gib_s"] = g
        r[f"floor_{k}_ms"] = x / g * 1e3 if g else None
        r[f"shrink_of_{k}"] = _ratio(r[f"floor_{k}_ms"], r["shrink_ms"])
    touch, reuse1, reuse2 = (allocs + [None] * 3)[:3]
    ft_allocs = [s for s in (it.get("first_touch_vm") or {}).get("guest", []) if s["step"] == "alloc"]
    first_touch, warm = (ft_allocs + [None] * 2)[:2]
    r.update({"touch_gib_s": _rate(touch), "reuse1_ms": reuse1 and reuse1["ms"], "reuse1_gib_s": _rate(reuse1),
              "reuse2_ms": reuse2 and reuse2["ms"], "reuse2_gib_s": _rate(reuse2),
              "first_touch_ms": first_touch and first_touch["ms"], "first_touch_gib_s": _rate(first_touch),
              "warm_gib_s": _rate(warm), "verify_ok": bool(verify and verify["ok"])})
    r["reuse1_over_first_touch"] = _ratio(r["reuse1_gib_s"], r["first_touch_gib_s"])
    r["reuse2_over_warm"] = _ratio(r["reuse2_gib_s"], r["warm_gib_s"])
    r["reuse2_over_first_touch"] = _ratio(r["reuse2_gib_s"], r["first_touch_gib_s"])
    for k in ("installs", "reinstalls", "first_touch_installs"):
        r[f"reuse1_{k}"] = _delta(st.get("reuse1"), st.get("grown"), k)
        r[f"reuse2_{k}"] = _delta(st.get("reuse2"), st.get("reuse1"), k)
    r["reuse1_rss_gain_gib"] = (rss["after_reuse1"] - rss["after_grow"]) / GIB if "after_reuse1" in rss else None
    r["reuse1_from_reclaimed"] = _ratio(r["reuse1_rss_gain_gib"], x)
    # What each install added over touching never-used memory, both measured at the same moment.
    n = r["reuse1_installs"]
    r["install_extra_us"] = ((r["reuse1_ms"] - r["first_touch_ms"]) * 1e3 / n
                             if n and r["reuse1_ms"] is not None and r["first_touch_ms"] is not None else None)
    r["reclaimed_check"] = reclaimed_check(r, frames)
    return r


def reclaimed_check(r: dict, frames: int) -> str | None:
    """None when every frame of the first reuse came from reclaimed memory, else why not."""
    why = []
    share = r.get("reuse1_from_reclaimed")
    if share is None:
        why.append("no RSS readings around the first reuse")
    elif share < FROM_RECLAIMED_MIN:
        why.append(f"RSS grew by only {share:.0%} of the reuse: the rest was memory the host still held")
    if r["mechanism"] == "hyperalloc":
        re, ft = r.get("reuse1_reinstalls"), r.get("reuse1_first_touch_installs")
        if re is None or re < FROM_RECLAIMED_MIN * frames:
            why.append(f"{re} reinstalls for {frames} frames")
        if ft:
            why.append(f"{ft} first-touch installs (frames the host never had)")
    return "; ".join(why) or None


def _stat(values: list) -> dict | None:
    v = [x for x in values if isinstance(x, (int, float)) and not isinstance(x, bool)]
    if not v:
        return None
    med = statistics.median(v)
    return {"median": med, "min": min(v), "max": max(v), "n": len(v),
            "spread": (max(v) - min(v)) / abs(med) if med else None}


def med(s: dict | None):
    return s["median"] if s else None


def summarize(rows: list[dict], params: dict, context: dict | None = None) -> dict:
    """Per variant and mechanism: statistics of every figure over the kept iterations, the checks
    (reclaimed memory, spread, verify), the goals, ratios to hyperalloc."""
    out = {"params": params, "context_limits": context or {}, "reference": REFERENCE,
           "reference_shrunk_gib": REFERENCE_SHRUNK_GIB, "candidates": {}, "failed": [], "flags": []}
    for variant in [v for v in VARIANTS if any(r["variant"] == v for r in rows)]:
        out["candidates"][variant] = {}
        for mech in [m for m in MECHANISMS if any(r["mechanism"] == m and r["variant"] == variant for r in rows)]:
            rs = [r for r in rows if r["mechanism"] == mech and r["variant"] == variant]
            kept = [r for r in rs if r["kept"] and not r.get("error")]
            keys = sorted({k for r in kept for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
                          - {"iteration", "mem_gib", "x_gib"})
            c = {"figures": {k: _stat([r.get(k) for r in kept]) for k in keys}, "iterations": len(rs), "kept": len(kept)}
            errors = sorted({r["error"] for r in rs if r.get("error")})
            if errors or not kept:
                c["error"] = "; ".join(errors) or "no kept iteration"
                out["failed"].append(f"{mech} ({variant})")
            c["flags"] = _flags(mech, variant, kept, c["figures"])
            c["all_from_reclaimed"] = not any(r.get("reclaimed_check") for r in kept)
            out["flags"] += [f"{mech} ({variant}): {f}" for f in c["flags"]]
            out["candidates"][variant][mech] = c
        h = out["candidates"][variant].get("hyperalloc")
        for mech, c in out["candidates"][variant].items():
            if h and mech != "hyperalloc":
                c["over_hyperalloc"] = {k: _ratio(med(c["figures"].get(k)), med(h["figures"].get(k))) for k in ("shrink_ms", "grow_ms")}
    t = out["candidates"].get("touched", {})
    if "hyperalloc" in t:
        out["goals"] = goals(t["hyperalloc"]["figures"])
        if not t["hyperalloc"]["all_from_reclaimed"]:
            out["goals"]["reuse"]["met"] = False  # a reuse of memory the host still held proves nothing
    return out


def _flags(mech: str, variant: str, kept: list[dict], figs: dict) -> list[str]:
    flags = []
    for r in kept:
        if r.get("reclaimed_check"):
            flags.append(f"iteration {r['iteration']}: not every reused frame came from reclaimed memory: {r['reclaimed_check']}")
        if variant == "touched" and not r.get("verify_ok"):
            flags.append(f"iteration {r['iteration']}: verify failed or missing")
        if r.get("floors_error"):
            flags.append(f"iteration {r['iteration']}: no discard floors: {r['floors_error']}")
    for k, goal in RATIOS.items():
        s = figs.get(k)
        if not s or s["n"] < 2:
            continue
        if s["spread"] is not None and s["spread"] > SPREAD_MAX:
            flags.append(f"{k}: repetitions {s['min']:.2f}..{s['max']:.2f} disagree by {s['spread']:.0%} of their "
                         f"median (more than the {SPREAD_MAX:.0%} this benchmark resolves)")
        if mech == "hyperalloc" and goal is not None and s["min"] < goal <= s["max"]:
            flags.append(f"{k}: repetitions {s['min']:.2f}..{s['max']:.2f} lie on both sides of the goal {goal}: not resolved")
    return flags


def goals(f: dict) -> dict:
    def goal(key, target, text, above=True):
        v = med(f.get(key))
        return {"value": v, "goal": text, "met": v is not None and (v >= target if above else v < target)}
    return {"shrink_raw": goal("shrink_of_raw", GOAL_SHRINK_OF_RAW, f">= {GOAL_SHRINK_OF_RAW} x raw madvise (same wait)"),
            "shrink_guest_mapped": goal("shrink_of_guest_mapped", GOAL_SHRINK_OF_GUEST_MAPPED,
                                        f">= {GOAL_SHRINK_OF_GUEST_MAPPED} x guest-mapped madvise (same wait)"),
            "grow": goal("grow_us_per_frame", GOAL_GROW_US_PER_FRAME, f"< {GOAL_GROW_US_PER_FRAME} us per 2 MiB frame", above=False),
            "reuse": goal("reuse1_over_first_touch", GOAL_REUSE_OF_FIRST_TOUCH,
                          f">= {GOAL_REUSE_OF_FIRST_TOUCH} x first touch (side by side), all from reclaimed memory")}


def fmt(v, spec=".1f"):
    return "-" if v is None else format(v, spec)


def _cell(s: dict | None, spec: str) -> str:
    if not s:
        return "-"
    if s["n"] < 2 or s["min"] == s["max"]:
        return fmt(s["median"], spec)
    return f"{fmt(s['median'], spec)} ({fmt(s['min'], spec)}-{fmt(s['max'], spec)})"


TOUCHED_LINES = [("shrink ms", "shrink_ms", ".2f"), ("  shrink discard part ms", "shrink_discard_ms", ".2f"),
                 ("  raw madvise floor ms", "floor_raw_ms", ".2f"), ("  raw 2 MiB steps floor ms", "floor_raw_2mib_ms", ".2f"),
                 ("  guest-mapped floor ms", "floor_guest_mapped_ms", ".2f"), ("  raw 4 KiB steps floor ms", "floor_raw_4kib_ms", ".0f"),
                 ("shrink / raw floor", "shrink_of_raw", ".2f"), ("shrink / 2 MiB steps", "shrink_of_raw_2mib", ".2f"),
                 ("shrink / guest-mapped", "shrink_of_guest_mapped", ".2f"), ("shrink / 4 KiB steps", "shrink_of_raw_4kib", ".2f"),
                 ("RSS after shrink GiB", "rss_after_shrink_gib", ".2f"),
                 ("grow ms", "grow_ms", ".3f"), ("grow us / 2 MiB frame", "grow_us_per_frame", ".4f"),
                 ("touch GiB/s", "touch_gib_s", ".2f"),
                 ("first reuse GiB/s", "reuse1_gib_s", ".2f"), ("  first touch beside it", "first_touch_gib_s", ".2f"),
                 ("  reuse 1 / first touch", "reuse1_over_first_touch", ".2f"),
                 ("  installs", "reuse1_installs", ".0f"), ("  of them reinstalls", "reuse1_reinstalls", ".0f"),
                 ("  first-touch installs", "reuse1_first_touch_installs", ".0f"),
                 ("  extra us per install", "install_extra_us", ".0f"),
                 ("  share newly backed", "reuse1_from_reclaimed", ".2f"),
                 ("second reuse GiB/s", "reuse2_gib_s", ".2f"), ("  warm alloc beside it", "warm_gib_s", ".2f"),
                 ("  reuse 2 / warm", "reuse2_over_warm", ".2f"), ("  reuse 2 / first touch", "reuse2_over_first_touch", ".2f"),
                 ("  installs", "reuse2_installs", ".0f")]
UNTOUCHED_LINES = [("shrink ms", "shrink_ms", ".2f"), ("RSS after shrink GiB", "rss_after_shrink_gib", ".2f"),
                   ("grow ms", "grow_ms", ".3f"), ("grow us / 2 MiB frame", "grow_us_per_frame", ".4f")]


def table(summary: dict) -> str:
    """The summary printed at the end of a run and saved as summary.txt: per variant, each figure's
    median (min-max) over the kept iterations, per mechanism."""
    p = summary["params"]
    lines = [f"inflate: {p['mem_gib']} GiB VM, {p['cpus']} workload vCPU, x = {p['x_gib']} GiB (VM - 2 GiB), "
             f"{p['iterations']} iterations per VM, the first dropped; wait >= {p['wait_s']} s between shrink and grow. "
             "Cells: median (min-max) over the kept iterations."]
    for variant, cands in summary["candidates"].items():
        mechs = list(cands)
        shown = [(label, [_cell(cands[m]["figures"].get(key), spec) for m in mechs])
                 for label, key, spec in (TOUCHED_LINES if variant == "touched" else UNTOUCHED_LINES)
                 if any(c["figures"].get(key) for c in cands.values())]
        w = max([len(m) for m in mechs] + [len(x) for _, cells in shown for x in cells]) + 2
        lines.append("")
        lines.append(f"== {variant} ==" + (" (the reference's 'nofault': no touch, no allocation)" if variant == "untouched" else ""))
        lines.append(f"{'':28}" + "".join(f"{m:>{w}}" for m in mechs))
        lines += [f"{label:28}" + "".join(f"{x:>{w}}" for x in cells) for label, cells in shown]
        for m, c in cands.items():
            if c.get("over_hyperalloc"):
                o = c["over_hyperalloc"]
                lines.append(f"{m} / hyperalloc: shrink {fmt(o['shrink_ms'])}x, grow {fmt(o['grow_ms'], '.0f')}x")
        lines.append("iterations kept: " + ", ".join(f"{m} {c['kept']}/{c['iterations']}" + (f" FAILED: {c['error'][:200]}" if c.get("error") else "")
                                                     for m, c in cands.items()))
    ref, g = summary.get("reference", REFERENCE), summary.get("reference_shrunk_gib", REFERENCE_SHRUNK_GIB)
    lines.append("")
    lines.append(f"reference (20 GiB VM shrunk by {g} GiB, other hardware, more vCPUs): " + "; ".join(
        f"{m} shrink {r['shrink_ms']} ms, grow {r['grow_ms']} ms, first reuse {r['reuse_gib_s']} GiB/s" for m, r in ref.items()))
    for k, x in (summary.get("goals") or {}).items():
        lines.append(f"goal {k:20} {x['goal']:70} {'MET' if x['met'] else 'MISSED'} ({fmt(x['value'], '.3f')})")
    ctx = summary.get("context_limits") or {}
    if ctx.get("populate_write_2mib_us"):
        lines.append(f"context (hvmm_limits at the start, not side by side): populate of 2 MiB "
                     f"{fmt(ctx['populate_write_2mib_us'].get('median'))} us median (+ ~{EXIT_US_ASSUMED:.0f} us exit = an "
                     f"install's floor); host first touch {fmt((ctx.get('first_touch') or {}).get('gib_s'), '.2f')} GiB/s")
    lines.append("floors: hvmm_limits in each wait after the shrink (--probes guest-mapped,steps): MADV_DONTNEED of x GiB of "
                 "touched THP memory in one call (raw), one call per 2 MiB, of memory a KVM guest touched (guest-mapped), "
                 "and one call per 4 KiB (1 GiB of it, scaled); shrink / floor = floor time / shrink time. First touch and "
                 "warm alloc: a VM without reclamation allocating x GiB at the same moment as each reuse. Share newly "
                 f"backed: RSS growth over the first reuse / x (>= {FROM_RECLAIMED_MIN} required, with HyperAlloc also "
                 "that many reinstalls and no first-touch install).")
    if summary["flags"]:
        lines.append("FLAGS:")
        lines += [f"  {f}" for f in summary["flags"]]
    if summary["failed"]:
        lines.append(f"FAILED: {', '.join(summary['failed'])}")
    return "\n".join(lines)


def headlines(summary: dict) -> list[dict]:
    """The index's rows (bench/lib/index.py): hvmm's headline figures beside the reference's."""
    t = summary.get("candidates", {}).get("touched", {})
    f = lambda m, k: med(((t.get(m) or {}).get("figures") or {}).get(k))  # noqa: E731
    g = summary.get("reference_shrunk_gib", REFERENCE_SHRUNK_GIB)
    ref = summary.get("reference", REFERENCE)
    x = summary["params"]["x_gib"]
    rows = [{"figure": f"hyperalloc shrink rate, GiB/s ({x} GiB; reference {g} GiB)", "hvmm": f("hyperalloc", "shrink_gib_s"),
             "reference": g / (ref["hyperalloc"]["shrink_ms"] / 1e3), "note": "other hardware"},
            {"figure": "hyperalloc shrink / raw madvise floor (same wait)", "hvmm": f("hyperalloc", "shrink_of_raw"),
             "reference": None, "note": f"goal >= {GOAL_SHRINK_OF_RAW}"},
            {"figure": "hyperalloc shrink / guest-mapped floor (same wait)", "hvmm": f("hyperalloc", "shrink_of_guest_mapped"),
             "reference": None, "note": f"goal >= {GOAL_SHRINK_OF_GUEST_MAPPED}"}]
    for m in ("balloon", "balloon-huge", "virtio-mem"):
        rows.append({"figure": f"{m} / hyperalloc shrink time", "hvmm": _ratio(f(m, "shrink_ms"), f("hyperalloc", "shrink_ms")),
                     "reference": ref[m]["shrink_ms"] / ref["hyperalloc"]["shrink_ms"], "note": ""})
    rows += [{"figure": "hyperalloc grow, us per 2 MiB frame", "hvmm": f("hyperalloc", "grow_us_per_frame"),
              "reference": ref["hyperalloc"]["grow_ms"] * 1e3 / (g * 512), "note": f"goal < {GOAL_GROW_US_PER_FRAME}"},
             {"figure": "hyperalloc first reuse, GiB/s", "hvmm": f("hyperalloc", "reuse1_gib_s"),
              "reference": ref["hyperalloc"]["reuse_gib_s"], "note": "1 vCPU here, more there"},
             {"figure": "hyperalloc first reuse / first touch (side by side)", "hvmm": f("hyperalloc", "reuse1_over_first_touch"),
              "reference": None, "note": f"goal >= {GOAL_REUSE_OF_FIRST_TOUCH}; installs per first reuse: "
                                         f"{fmt(f('hyperalloc', 'reuse1_installs'), '.0f')}"},
             {"figure": "hyperalloc second reuse / warm alloc (side by side)", "hvmm": f("hyperalloc", "reuse2_over_warm"),
              "reference": None, "note": f"installs: {fmt(f('hyperalloc', 'reuse2_installs'), '.0f')}"}]
    return rows
