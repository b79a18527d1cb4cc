"""From raw records to figures: one flat row per VM, medians per (mechanism, N), limits and goals."""
from __future__ import annotations

import statistics

from lib import guest_lines

GIB = 1 << 30
MIB = 1 << 20
FRAME = 2 * MIB
EXIT_US_ASSUMED = 14.0  # one port-I/O exit round trip on this machine (ARCHITECTURE.md, "The built-in guest"); not measured per run

MECHANISMS = ("hyperalloc", "balloon", "balloon-huge", "virtio-mem")

# The reference's inflate (20 GiB VM shrunk by 18 GiB to 2 GiB, 12 vCPUs, 2x Xeon Gold 6252): shrink ms,
# grow ms, first allocation after grow in GiB/s. Other hardware and scale: context, not a target.
REFERENCE = {"hyperalloc": {"shrink_ms": 58, "grow_ms": 2.35, "reuse_gib_s": 3.9},
             "balloon-huge": {"shrink_ms": 147, "grow_ms": 61, "reuse_gib_s": 4.3},
             "virtio-mem": {"shrink_ms": 580, "grow_ms": 197, "reuse_gib_s": 4.2},
             "balloon": {"shrink_ms": 21000, "grow_ms": 8500, "reuse_gib_s": 0.97}}

# Goals of issue 4, applied to HyperAlloc.
GOAL_SHRINK_OF_MADVISE = 0.8
GOAL_SHRINK_OF_GUEST_MAPPED = 0.9  # issue 12: the floor that includes the hypervisor's unmapping
SHRINK_PARTS = ("residency", "cas_walk", "discard", "other")  # the resize reply's shrink_parts_ms
GOAL_GROW_US_PER_FRAME = 1.0
GOAL_REUSE_OF_FIRST_TOUCH = 0.9


def _first(steps: list[dict], name: str, index: int = 0) -> dict | None:
    found = [s for s in steps if s["step"] == name]
    return found[index] if len(found) > index else None


def row(rec: dict) -> dict:
    """One flat row of figures from one VM's raw record (see one_vm.py)."""
    n = rec["n_gib"]
    r = {"mechanism": rec["mechanism"], "n_gib": n, "rep": rec.get("rep"), "error": rec.get("error")}
    if r["error"]:
        return r
    steps = rec.get("guest") or guest_lines.parse(rec.get("guest_output", ""))
    r["exit_code"] = rec.get("exit_code")
    if rec["mechanism"] == "none":
        a = _first(steps, "alloc")
        r["first_touch_ms"] = a and a["ms"]
        r["first_touch_mib_s"] = a and a["bytes"] / MIB / (a["ms"] / 1e3)
        return r
    touch = _first(steps, "alloc", 0)
    reuse = _first(steps, "alloc", 1)
    verify = _first(steps, "verify")
    shrink_ms = rec["shrink"]["elapsed_ms"]
    grow_ms = rec["grow"]["elapsed_ms"]
    frames = n * GIB // FRAME
    installs = rec["status_reused"].get("detail", {}).get("installs")
    r.update({
        "touch_ms": touch and touch["ms"],
        "touch_mib_s": touch and touch["bytes"] / MIB / (touch["ms"] / 1e3),
        "shrink_ms": shrink_ms, "shrink_wall_ms": rec["shrink"]["wall_ms"],
        "shrink_gib_s": n / (shrink_ms / 1e3) if shrink_ms else None,
        "rss_before_shrink": rec["rss_before_shrink"], "rss_after_shrink": rec["rss_after_shrink"],
        "rss_discarded_gib": (rec["rss_before_shrink"] - rec["rss_after_shrink"]) / GIB,
        "rss_after_shrink_gib": rec["rss_after_shrink"] / GIB,
        "grow_ms": grow_ms, "grow_wall_ms": rec["grow"]["wall_ms"],
        "grow_us_per_frame": grow_ms * 1e3 / frames,
        "reuse_ms": reuse and reuse["ms"],
        "reuse_mib_s": reuse and reuse["bytes"] / MIB / (reuse["ms"] / 1e3),
        "rss_after_reuse": rec["rss_after_reuse"],
        "installs": rec["status_reused"].get("detail", {}).get("installs"),
        "reuse_over_touch": reuse and touch and touch["ms"] / reuse["ms"],
        "verify_ok": bool(verify and verify["ok"]),
        **{f"shrink_{p}_ms": (rec["shrink"].get("reply") or {}).get("shrink_parts_ms", {}).get(p) for p in SHRINK_PARTS},
        # What each install added over touching never-used memory in the same VM.
        "install_us": (reuse["ms"] - touch["ms"]) * 1e3 / installs if installs and reuse and touch else None,
    })
    return r


def _stat(rows: list[dict], key: str) -> dict | None:
    v = [x[key] for x in rows if x.get(key) is not None]
    if not v:
        return None
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}


def _med(s: dict | None):
    return s["median"] if s else None


def summarize(rows: list[dict], limits: dict[int, dict]) -> dict:
    """Per N: figures of each mechanism (median/min/max over repetitions), the limits, goal checks."""
    out = {"exit_us_assumed": EXIT_US_ASSUMED, "by_n": {}}
    for n in sorted({r["n_gib"] for r in rows}):
        lim = limits.get(n, {})
        ft = _stat([r for r in rows if r["n_gib"] == n and r["mechanism"] == "none" and not r["error"]], "first_touch_mib_s")
        entry = {"limits": {
            "madvise_gib_s": (lim.get("madvise_dontneed_gib_s") or {}).get("median"),
            # Both discard floors from one hvmm_limits run, interleaved: memory only that process
            # touched, and memory a KVM guest touched and mapped (includes KVM's unmapping).
            "raw_madvise_interleaved_gib_s": ((lim.get("madvise_dontneed_guest_mapped") or {}).get("raw_gib_s") or {}).get("median"),
            "guest_mapped_madvise_gib_s": ((lim.get("madvise_dontneed_guest_mapped") or {}).get("gib_s") or {}).get("median"),
            "populate_2mib_us": (lim.get("populate_write_2mib_us") or {}).get("median"),
            "populate_2mib_us_mean": (lim.get("populate_write_2mib_us") or {}).get("mean"),
            "populate_gib_s": (lim.get("populate_write_gib_s") or {}).get("median"),
            "host_first_touch_gib_s": (lim.get("first_touch") or {}).get("gib_s"),
            "guest_first_touch_mib_s": ft,
        }, "mechanisms": {}}
        for mech in [m for m in MECHANISMS if any(r["mechanism"] == m for r in rows)]:
            rs = [r for r in rows if r["n_gib"] == n and r["mechanism"] == mech and not r["error"]]
            keys = ("shrink_ms", "shrink_wall_ms", "shrink_gib_s", "rss_discarded_gib", "rss_after_shrink_gib", "grow_ms", "grow_wall_ms",
                    "grow_us_per_frame", "touch_mib_s", "reuse_ms", "reuse_mib_s", "reuse_over_touch", "installs", "install_us",
                    *(f"shrink_{p}_ms" for p in SHRINK_PARTS))
            m = {k: _stat(rs, k) for k in keys}
            m["runs"] = len(rs)
            m["failed_runs"] = len([r for r in rows if r["n_gib"] == n and r["mechanism"] == mech and r["error"]])
            m["verify_ok"] = all(r.get("verify_ok") for r in rs) and bool(rs)
            entry["mechanisms"][mech] = m
        entry["goals"] = _goals(n, entry)
        h = entry["mechanisms"]["hyperalloc"]
        entry["over_hyperalloc"] = {
            mech: {k: (_med(m[k]) / _med(h[k]) if _med(m[k]) and _med(h[k]) else None) for k in ("shrink_ms", "grow_ms")}
            for mech, m in entry["mechanisms"].items() if mech != "hyperalloc"}
        out["by_n"][n] = entry
    out["mechanisms"] = [m for m in MECHANISMS if any(m in e["mechanisms"] for e in out["by_n"].values())]
    out["reference"] = REFERENCE
    return out


def _goals(n: int, entry: dict) -> dict:
    lim, h = entry["limits"], entry["mechanisms"]["hyperalloc"]
    g = {}
    shrink, madv = _med(h["shrink_gib_s"]), lim["madvise_gib_s"]
    g["shrink"] = {"value_gib_s": shrink, "limit_gib_s": madv,
                   "ratio": shrink / madv if shrink and madv else None,
                   "goal": f">= {GOAL_SHRINK_OF_MADVISE} x madvise"}
    g["shrink"]["met"] = g["shrink"]["ratio"] is not None and g["shrink"]["ratio"] >= GOAL_SHRINK_OF_MADVISE
    gm = lim.get("guest_mapped_madvise_gib_s")
    g["shrink_guest_mapped"] = {"value_gib_s": shrink, "limit_gib_s": gm, "ratio": shrink / gm if shrink and gm else None,
                                "goal": f">= {GOAL_SHRINK_OF_GUEST_MAPPED} x guest-mapped madvise"}
    g["shrink_guest_mapped"]["met"] = (g["shrink_guest_mapped"]["ratio"] is not None
                                       and g["shrink_guest_mapped"]["ratio"] >= GOAL_SHRINK_OF_GUEST_MAPPED)
    grow = _med(h["grow_us_per_frame"])
    g["grow"] = {"value_us_per_frame": grow, "goal": f"< {GOAL_GROW_US_PER_FRAME} us per 2 MiB frame",
                 "met": grow is not None and grow < GOAL_GROW_US_PER_FRAME}
    reuse, ft = _med(h["reuse_mib_s"]), _med(h["touch_mib_s"])
    g["reuse"] = {"value_mib_s": reuse, "limit_mib_s": ft, "ratio": _med(h["reuse_over_touch"]),
                  "goal": f">= {GOAL_REUSE_OF_FIRST_TOUCH} x first touch of never-used memory",
                  "note": "ratio = the same VM's first `alloc N G` time / its reuse `alloc N G` time, median over runs"}
    g["reuse"]["met"] = g["reuse"]["ratio"] is not None and g["reuse"]["ratio"] >= GOAL_REUSE_OF_FIRST_TOUCH
    installs = _med(h["installs"])
    install = {"installs": installs, "value_us": _med(h["install_us"]), "limit_us": (lim["populate_2mib_us"] + EXIT_US_ASSUMED) if lim["populate_2mib_us"] else None,
               "note": "(reuse time - the same VM's first-touch time of the same bytes) / installs; limit = populate "
                       f"2 MiB (median) + one exit ({EXIT_US_ASSUMED} us, assumed: ARCHITECTURE.md, 'The built-in guest')"}
    if not installs:
        install["why_none"] = "no installs: the guest served the reuse from frames the host never reclaimed (it prefers them)"
    g["install"] = install
    return g


def caveats(n: int, h: dict) -> list[str]:
    """Where HyperAlloc's figure is not the like-for-like comparison the goal assumes."""
    out = []
    disc, inst = _med(h["rss_discarded_gib"]), _med(h["installs"])
    if disc is not None and disc < 0.95 * n:
        out.append(f"caveat: hyperalloc's shrink took {n - disc:.2f} GiB of frames the host had never backed (cheap to "
                   f"discard) and left that much touched free memory resident: its GiB/s overstates the touched-memory rate")
    if inst is not None and inst * 2 / 1024 < 0.5 * n:
        out.append(f"caveat: only {inst * 2 / 1024:.2f} of the {n} GiB reused came from reclaimed frames (installs): "
                   f"the reuse figure mostly measures never-reclaimed memory")
    return out


def _fmt(v, spec=".1f"):
    return "-" if v is None else format(v, spec)


def table(summary: dict) -> str:
    """The summary table printed at the end of a run and saved as summary.txt."""
    lines = []
    for n, e in summary["by_n"].items():
        n = int(n)  # a str key once the summary went through JSON
        lim, g = e["limits"], e["goals"]
        lines.append(f"== inflate N = {n} GiB (VM 16 GiB, shrink to {16 - n} GiB, grow back, allocate {n} GiB again) ==")
        mechs = list(e["mechanisms"])
        h = e["mechanisms"]["hyperalloc"]
        lines.append(f"{'':22}" + "".join(f"{m:>14}" for m in mechs) + f"{'limit':>14}")

        def line(label, key, limit=None, spec=".1f"):
            lines.append(f"{label:22}" + "".join(f"{_fmt(_med(e['mechanisms'][m][key]), spec):>14}" for m in mechs)
                         + f"{_fmt(limit, spec):>14}")
        madv_ms = n / lim["madvise_gib_s"] * 1e3 if lim["madvise_gib_s"] else None
        line("shrink ms", "shrink_ms", madv_ms, ".2f")
        line("shrink GiB/s", "shrink_gib_s", lim["madvise_gib_s"])
        for p in SHRINK_PARTS:
            line(f"  shrink {p} ms", f"shrink_{p}_ms", None, ".2f")
        line("touched GiB discarded", "rss_discarded_gib", float(n), ".2f")
        line("RSS after shrink GiB", "rss_after_shrink_gib", None, ".2f")
        line("grow ms", "grow_ms", None, ".3f")
        line("grow us / 2 MiB frame", "grow_us_per_frame", GOAL_GROW_US_PER_FRAME, ".4f")
        line("first touch MiB/s", "touch_mib_s", _med(lim["guest_first_touch_mib_s"]), ".0f")
        line("reuse MiB/s", "reuse_mib_s", None, ".0f")
        line("reuse / first touch", "reuse_over_touch", GOAL_REUSE_OF_FIRST_TOUCH, ".2f")
        line("installs", "installs", None, ".0f")
        line("install us / 2 MiB", "install_us", g["install"]["limit_us"])
        for mech, r in e["over_hyperalloc"].items():
            lines.append(f"{mech} / hyperalloc: shrink {_fmt(r['shrink_ms'])}x, grow {_fmt(r['grow_ms'], '.0f')}x")
        lines.append("runs " + ", ".join(f"{m} {x['runs']} (failed {x['failed_runs']}, verify "
                                         f"{'ok' if x['verify_ok'] else 'FAILED'})" for m, x in e["mechanisms"].items()))
        gm, raw = lim.get("guest_mapped_madvise_gib_s"), lim.get("raw_madvise_interleaved_gib_s")
        lines.append(f"discard floors (hvmm_limits, interleaved): raw madvise {_fmt(raw)} GiB/s, guest-mapped "
                     f"{_fmt(gm)} GiB/s ({_fmt(n / gm * 1e3 if gm else None, '.2f')} ms for {n} GiB)")
        for k in ("shrink", "shrink_guest_mapped", "grow", "reuse"):
            x = g.get(k)
            if x is None:
                continue
            ratio = f" (ratio {x['ratio']:.2f})" if x.get("ratio") is not None else ""
            lines.append(f"goal {k:7} {x['goal']:48} {'MET' if x['met'] else 'MISSED'}{ratio}")
        if g["install"].get("why_none"):
            lines.append(f"install cost: {g['install']['why_none']}")
        lines += caveats(n, h)
        lines.append("")
    ref = summary.get("reference", REFERENCE)
    lines.append("reference (20 GiB VM shrunk by 18 GiB, other hardware): " + "; ".join(
        f"{m} shrink {r['shrink_ms']} ms, grow {r['grow_ms']} ms, reuse {r['reuse_gib_s']} GiB/s" for m, r in ref.items()))
    lines.append("limit column: shrink = N GiB at the madvise rate; touched GiB discarded = N (all of it); grow = goal; "
                 "first touch = a separate fresh VM without reclamation (context only); reuse / first touch = goal, "
                 "per VM against its own first touch; install = populate + exit.")
    lines.append("limits: shrink = madvise(MADV_DONTNEED) of N GiB touched THP memory (hvmm_limits, median); "
                 "first touch = each VM's own first `alloc N G` (never-used memory, 4 KiB blocks, after warm-up VMs); install = MADV_POPULATE_WRITE of 2 MiB "
                 f"+ {EXIT_US_ASSUMED} us exit (assumed). Values are medians over the runs.")
    return "\n".join(lines)
