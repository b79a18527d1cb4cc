"""inflate plots (PNG): shrink and grow time per mechanism with the limit marked; reuse MiB/s with
the first-touch limit; RSS over time of one run per mechanism."""
from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"hyperalloc": "tab:blue", "balloon": "tab:orange", "balloon-huge": "tab:green", "virtio-mem": "tab:purple",
          "none": "tab:gray"}


def _mechs(summary: dict) -> list:
    return summary.get("mechanisms") or ["hyperalloc", "balloon"]


def _label(v: float) -> str:
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 1 else f"{v:.3g}"


def _bars(ax, summary: dict, key: str, scale: float = 1.0):
    """Grouped bars (median, min..max whiskers) per N and mechanism; returns {n: group centre}."""
    ns = sorted(summary["by_n"], key=int)
    mechs = _mechs(summary)
    width = 0.8 / len(mechs)
    centres = {}
    for i, n in enumerate(ns):
        centres[n] = i
        for j, mech in enumerate(mechs):
            s = (summary["by_n"][n]["mechanisms"].get(mech) or {}).get(key)
            if not s:
                continue
            x = i + (j - (len(mechs) - 1) / 2) * width
            med = s["median"] * scale
            ax.bar(x, med, width, color=COLORS[mech], label=mech if i == 0 else None,
                   yerr=[[med - s["min"] * scale], [s["max"] * scale - med]], capsize=3)
            ax.annotate(_label(med), (x, med), ha="center", va="bottom", fontsize=8, xytext=(0, 2),
                        textcoords="offset points")
    ax.set_xticks(range(len(ns)), [f"N = {n} GiB" for n in ns])
    return centres


def _limit_mark(ax, x: float, y: float | None, label: str | None, style="k--"):
    if y:
        ax.plot([x - 0.45, x + 0.45], [y, y], style, lw=1.5, label=label)


def shrink_grow(summary: dict, path: Path):
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.5))
    c = _bars(a, summary, "shrink_ms")
    for k, (n, x) in enumerate(c.items()):
        madv = summary["by_n"][n]["limits"]["madvise_gib_s"]
        _limit_mark(a, x, int(n) / madv * 1e3 if madv else None, "limit: madvise of N GiB" if k == 0 else None)
    a.set_yscale("log")
    a.set_ylabel("shrink time (ms, log)")
    a.set_title("shrink 16 GiB → 16−N GiB")
    a.legend(fontsize=8)
    c = _bars(b, summary, "grow_ms")
    for k, (n, x) in enumerate(c.items()):
        _limit_mark(b, x, int(n) * 512 * 1e-3, "goal: 1 µs per 2 MiB frame" if k == 0 else None, "r:")
    b.set_yscale("log")
    b.set_ylabel("grow time (ms, log)")
    b.set_title("grow back to 16 GiB")
    b.legend(fontsize=8)
    fig.suptitle("inflate: " + ", ".join(_mechs(summary)) + " (median of runs, whiskers min..max)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def reuse(summary: dict, path: Path):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    c = _bars(ax, summary, "reuse_mib_s")
    mechs = _mechs(summary)
    width = 0.8 / len(mechs)
    for k, (n, x) in enumerate(c.items()):
        for j, mech in enumerate(mechs):  # each mechanism's own first touch (same VM) is its limit
            ft = (summary["by_n"][n]["mechanisms"].get(mech) or {}).get("touch_mib_s")
            y = ft and ft["median"]
            xm = x + (j - (len(mechs) - 1) / 2) * width
            if y:
                ax.plot([xm - width / 2, xm + width / 2], [y, y], "k--", lw=1.5,
                        label="limit: same VM's first touch" if k == 0 and j == 0 else None)
                ax.plot([xm - width / 2, xm + width / 2], [0.9 * y, 0.9 * y], "r:", lw=1.5,
                        label="goal: 0.9 × limit" if k == 0 and j == 0 else None)
        inst = summary["by_n"][n]["mechanisms"]["hyperalloc"].get("installs")
        if inst:
            ax.annotate(f"{inst['median']:.0f} installs", (x - (len(mechs) - 1) / 2 * width, 0), ha="center", va="bottom", fontsize=7,
                        color="white", xytext=(0, 3), textcoords="offset points")
    ax.set_ylabel("guest `alloc N G` after grow (MiB/s)")
    ax.set_title("reuse after grow (4 KiB allocations, touched)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def rss_timeline(raw: Path, ns: list, mechs: list, path: Path):
    fig, axes = plt.subplots(1, len(ns), figsize=(6 * len(ns), 4), squeeze=False)
    for ax, n in zip(axes[0], ns):
        for mech in mechs:
            f = raw / f"{mech}_{n}g_r0_rss.csv"
            if not f.exists():
                continue
            with open(f) as fh:
                rows = list(csv.DictReader(fh))
            ax.plot([float(r["t_s"]) for r in rows], [int(r["rss_bytes"]) / 2**30 for r in rows], color=COLORS[mech],
                    label=mech)
        ax.set_title(f"N = {n} GiB, first run")
        ax.set_xlabel("time since launch (s)")
        ax.set_ylabel("VMM RSS (GiB)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def draw(d: Path, summary: dict) -> list[Path]:
    out = [d / "inflate_shrink_grow.png", d / "inflate_reuse.png", d / "inflate_rss.png"]
    shrink_grow(summary, out[0])
    reuse(summary, out[1])
    rss_timeline(d / "raw", sorted(summary["by_n"], key=int), _mechs(summary), out[2])
    return out
