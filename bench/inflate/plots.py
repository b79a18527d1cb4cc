"""inflate plots (PNG), drawn from summary.json and the raw records:
- inflate_shrink_grow.png: shrink in ms per GiB and grow in us per 2 MiB frame, touched and untouched,
  points with min..max ranges on log axes, each mechanism beside the discard floors measured in its
  own waits and the reference's figures;
- inflate_reuse.png: first and second reuse beside the allocations measured at the same moment
  (linear GiB/s), and their ratios per iteration; a reuse that was not served from reclaimed memory
  is drawn hollow and says so;
- inflate_rss.png: host RSS through the first kept iteration, one panel per mechanism, each phase
  stretched to the same width so that the panels line up, with its real duration printed."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from inflate import analysis  # noqa: E402

COLORS = {"hyperalloc": "tab:blue", "balloon": "tab:orange", "balloon-huge": "tab:green", "virtio-mem": "tab:purple"}
FLOOR_STYLE = {"raw": ("black", "-"), "raw_2mib": ("gray", "--"), "guest_mapped": ("tab:red", "-"),
               "raw_4kib": ("tab:brown", ":")}
PHASES = ["touch + free", "shrink", "wait", "grow", "reuse 1", "reuse 2"]


def _value(v: float) -> str:
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}" if v >= 0.1 else f"{v:.2g}"


def _point(ax, x: float, s: dict | None, scale: float, color: str, marker: str, filled: bool, label: str | None,
           text_side: int = 0):
    """A median with its min..max range; text_side -1/+1 prints the median left/right of it."""
    if not s:
        return
    y = s["median"] * scale
    ax.errorbar([x], [y], yerr=[[y - s["min"] * scale], [s["max"] * scale - y]], fmt=marker, color=color, capsize=3,
                markerfacecolor=color if filled else "white", label=label)
    if text_side:
        ax.annotate(_value(y), (x, y), xytext=(7 * text_side, 0), textcoords="offset points", fontsize=7,
                    ha="left" if text_side > 0 else "right", va="center")


def _cands(summary: dict, variant: str) -> dict:
    return summary.get("candidates", {}).get(variant, {})


def shrink_grow(summary: dict, path: Path) -> None:
    mechs = list(dict.fromkeys(list(_cands(summary, "touched")) + list(_cands(summary, "untouched"))))
    x_gib = summary["params"]["x_gib"]
    ref, ref_gib = summary.get("reference", {}), summary.get("reference_shrunk_gib", analysis.REFERENCE_SHRUNK_GIB)
    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 6))
    for i, m in enumerate(mechs):
        t = (_cands(summary, "touched").get(m) or {}).get("figures", {})
        u = (_cands(summary, "untouched").get(m) or {}).get("figures", {})
        c = COLORS.get(m, "gray")
        first = i == 0
        _point(a, i - 0.12, t.get("shrink_ms"), 1 / x_gib, c, "o", True, "touched" if first else None, -1)
        _point(a, i + 0.12, u.get("shrink_ms"), 1 / x_gib, c, "s", False, "untouched" if first else None, +1)
        for k, (color, style) in FLOOR_STYLE.items():  # the floors of this mechanism's own waits
            s = t.get(f"floor_{k}_ms")
            if s:
                y = s["median"] / x_gib
                a.plot([i - 0.4, i + 0.4], [y, y], color=color, ls=style, lw=1.2,
                       label=f"floor: {analysis.FLOORS[k][1]}" if first else None)
        if m in ref:
            a.plot([i], [ref[m]["shrink_ms"] / ref_gib], "x", color="dimgray", ms=8,
                   label=f"reference ({ref_gib} GiB, other hardware)" if first else None)
        _point(b, i - 0.12, t.get("grow_us_per_frame"), 1, c, "o", True, "touched" if first else None, -1)
        _point(b, i + 0.12, u.get("grow_us_per_frame"), 1, c, "s", False, "untouched" if first else None, +1)
        if m in ref:
            b.plot([i], [ref[m]["grow_ms"] * 1e3 / (ref_gib * 512)], "x", color="dimgray", ms=8,
                   label="reference (other hardware)" if first else None)
    b.axhline(analysis.GOAL_GROW_US_PER_FRAME, color="tab:red", ls=":", lw=1, label="goal: 1 us per frame")
    for ax in (a, b):
        ax.set_xticks(range(len(mechs)), mechs)
        ax.set_yscale("log")
        ax.set_xlim(-0.6, len(mechs) - 0.4)
        ax.grid(axis="y", which="both", alpha=0.25)
    a.set_ylabel("shrink time per GiB shrunk (ms/GiB, log)")
    a.set_title(f"shrink {summary['params']['mem_gib']} -> 2 GiB (x = {x_gib} GiB)", fontsize=10)
    b.set_ylabel("grow time per 2 MiB frame (us, log)")
    b.set_title("grow back", fontsize=10)
    for ax in (a, b):  # below the axes: a legend inside would cover points
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=3)
    fig.suptitle("inflate: median and min..max of the kept iterations; floors measured in each mechanism's own waits",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def reuse_label(mech: str, c: dict) -> str:
    """The x label of one mechanism in the reuse plot: installs per first / second reuse, and whether
    its reuse measured what the plot's title says (memory the host had taken back)."""
    f = c.get("figures", {})
    text, installs = mech, analysis.med(f.get("reuse1_installs"))
    if installs:
        text += f"\n{installs:.0f} / {analysis.fmt(analysis.med(f.get('reuse2_installs')), '.0f')} installs"
    elif installs == 0:
        text += "\n0 installs: NOT reclaimed memory"
    if not c["all_from_reclaimed"]:
        text += "\nhollow: NOT all from\nreclaimed memory"
    return text


def reuse(summary: dict, path: Path) -> None:
    cands = _cands(summary, "touched")
    mechs = list(cands)
    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 6.5))
    labels = []
    for i, m in enumerate(mechs):
        c, f = cands[m], cands[m].get("figures", {})
        ok = c["all_from_reclaimed"]
        col = COLORS.get(m, "gray")
        first = i == 0
        _point(a, i - 0.27, f.get("reuse1_gib_s"), 1, col, "o", ok, "first reuse" if first else None, 0)
        _point(a, i - 0.09, f.get("first_touch_gib_s"), 1, "black", "o", False, "first touch beside it" if first else None, 0)
        _point(a, i + 0.09, f.get("reuse2_gib_s"), 1, col, "^", True, "second reuse" if first else None, 0)
        _point(a, i + 0.27, f.get("warm_gib_s"), 1, "black", "^", False, "warm alloc beside it" if first else None, 0)
        for key, dx, marker, lab in (("reuse1_over_first_touch", -0.12, "o", "reuse 1 / first touch"),
                                     ("reuse2_over_warm", 0.12, "^", "reuse 2 / warm alloc")):
            s = f.get(key)
            if not s:
                continue
            b.plot([i + dx] * 2, [s["min"], s["max"]], color=col, lw=1)
            b.plot([i + dx], [s["median"]], marker, color=col, markerfacecolor=col if ok or key.startswith("reuse2") else "white",
                   ms=8, label=lab if first else None)
            b.annotate(_value(s["median"]), (i + dx, s["median"]), xytext=(7 if dx > 0 else -7, 0),
                       textcoords="offset points", fontsize=7, ha="left" if dx > 0 else "right", va="center")
        labels.append(reuse_label(m, c))
    for ax in (a, b):
        ax.set_xticks(range(len(mechs)), labels, fontsize=8)
        ax.set_xlim(-0.6, len(mechs) - 0.4)
        ax.set_ylim(bottom=0)
        ax.grid(axis="y", alpha=0.25)
    b.axhline(analysis.GOAL_REUSE_OF_FIRST_TOUCH, color="tab:red", ls=":", lw=1, label="goal 0.9 (first reuse)")
    b.axhline(1.0, color="gray", lw=0.8)
    a.set_ylabel(f"allocation of {summary['params']['x_gib']} GiB in 4 KiB blocks (GiB/s)")
    a.set_title("reuse after grow and the same allocation in a VM without reclamation, at the same moment", fontsize=9)
    b.set_ylabel("ratio (median, line: min..max)")
    b.set_title("reuse / allocation beside it (1 = as fast)", fontsize=9)
    for ax in (a, b):
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    fig.suptitle("inflate reuse (installs per first / second reuse under each HyperAlloc label)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def phase_bounds(it: dict) -> list[float]:
    """Seconds (RSS clock) where each phase of a touched iteration begins, plus where the last ends."""
    mk = it["marks"]
    return [mk["start"], it["shrink"]["start_s"], it["shrink"]["end_s"], it["grow"]["start_s"], it["grow"]["end_s"],
            mk["reuse1_end"], mk["reuse2_end"]]


def warp(t: float, bounds: list[float]) -> float | None:
    """Time -> phase axis: phase j spans [j, j+1] whatever its length; None outside the iteration."""
    for j in range(len(bounds) - 1):
        lo, hi = bounds[j], bounds[j + 1]
        if lo <= t <= hi:
            return j + ((t - lo) / (hi - lo) if hi > lo else 0.5)
    return None


def _duration(s: float) -> str:
    return f"{s * 1e3:.0f} ms" if s < 1 else f"{s:.1f} s"


def rss_timeline(raw: Path, summary: dict, path: Path) -> bool:
    """False (and no file) when no record has a kept iteration to draw."""
    series = []
    for m in _cands(summary, "touched"):
        f = raw / f"touched_{m}.json"
        if not f.exists():
            continue
        rec = json.loads(f.read_text())
        its = [it for it in rec.get("iters", []) if it["iteration"] == analysis.DROPPED]
        csv_path = raw / f"touched_{m}_rss.csv"
        if not its or not csv_path.exists():
            continue
        it = its[0]
        bounds = phase_bounds(it)
        with open(csv_path) as fh:
            pts = [(float(r["t_s"]), int(r["rss_bytes"])) for r in csv.DictReader(fh)]
        rss = it["rss"]  # the host's own readings at the phase boundaries, exact in time
        pts += [(bounds[1], rss["before_shrink"]), (bounds[2], rss["after_shrink"]), (bounds[4], rss["after_grow"]),
                (bounds[5], rss["after_reuse1"]), (bounds[6], rss["after_reuse2"])]
        xy = sorted((w, b / analysis.GIB) for t, b in pts if (w := warp(t, bounds)) is not None)
        series.append((m, xy, [b - a for a, b in zip(bounds, bounds[1:])]))
    if not series:
        return False
    fig, axes = plt.subplots(len(series), 1, figsize=(11, 1.9 * len(series) + 1.0), sharex=True, sharey=True, squeeze=False)
    for ax, (m, xy, durations) in zip(axes[:, 0], series):
        for j in range(len(PHASES)):
            if j % 2:
                ax.axvspan(j, j + 1, color="0.92", lw=0)
            ax.text(j + 0.5, 0.97, _duration(durations[j]), transform=ax.get_xaxis_transform(), ha="center", va="top",
                    fontsize=7)
        ax.plot([p[0] for p in xy], [p[1] for p in xy], color=COLORS.get(m, "gray"), lw=1.5)
        ax.set_ylabel("RSS GiB")
        ax.set_title(m, fontsize=9, loc="left")
        ax.set_ylim(0, max(p[1] for s in series for p in s[1]) * 1.25 + 0.1)
    axes[-1, 0].set_xticks([j + 0.5 for j in range(len(PHASES))], PHASES)
    axes[-1, 0].set_xlim(0, len(PHASES))
    fig.suptitle(f"host RSS through iteration {analysis.DROPPED + 1} (the first kept), touched; every phase drawn "
                 "equally wide, its real duration printed in it", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def draw(d: Path, summary: dict) -> list[Path]:
    out = [d / "inflate_shrink_grow.png", d / "inflate_reuse.png"]
    shrink_grow(summary, out[0])
    reuse(summary, out[1])
    if rss_timeline(d / "raw", summary, d / "inflate_rss.png"):
        out.append(d / "inflate_rss.png")
    return out
