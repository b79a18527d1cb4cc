"""compiling: host RSS over time per candidate, the ideal curve, the phases shaded."""
from __future__ import annotations

from pathlib import Path

from compiling import bench
from lib import replay as rp

COLORS = {"hyperalloc": "tab:red", "balloon-fpr-llfree": "tab:blue", "balloon-fpr-buddy": "tab:cyan",
          "balloon-huge-fpr": "tab:purple", "virtio-mem-auto": "tab:green", "none-llfree": "tab:gray",
          "none-buddy": "tab:brown"}


def shade_phases(ax, rec: dict) -> None:
    """Phases of one replay, in seconds since its start, shaded alternately and labelled."""
    t0 = rec["replay"]["start"]["host_ns"] / 1e9
    for i, (name, (a, b)) in enumerate(rp.phase_windows(rec["replay"]).items()):
        if name == "end":
            continue
        ax.axvspan(a - t0, b - t0, color="0.9" if i % 2 else "0.97", zorder=0)
        ax.text((a + b) / 2 - t0, 0.98, name, transform=ax.get_xaxis_transform(), ha="center", va="top", fontsize=7)


def draw(d: Path, summary: dict) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(11, 5))
    ideal_done = False
    for r in summary["rows"]:
        rec = bench.load_raw(d, r["candidate"])
        if r.get("error") or not rec:
            continue
        t0 = rec["replay"]["start"]["host_ns"] / 1e9
        if not ideal_done:
            shade_phases(ax, rec)
            ax.plot([ns / 1e9 - t0 for ns, _, _ in rec["replay"]["samples"]],
                    [b / 2**30 for _, _, b in rec["replay"]["samples"]], "k--", lw=1.2, label="ideal (guest in use)")
            ideal_done = True
        ax.plot([t - t0 for t, _ in rec["rss"]], [b / 2**30 for _, b in rec["rss"]], lw=1.2,
                color=COLORS.get(r["candidate"]), label=f"{r['candidate']} ({r['gib_min_total']:.1f} GiB·min)")
    p = summary["params"]
    ax.set_xlabel("time since replay start [s]")
    ax.set_ylabel("host RSS [GiB]")
    ax.set_title(f"compiling: kernel-build replay, {p['mem_gib']} GiB VM, time /{p['time_scale']:g}, "
                 f"memory x{p['mem_scale']:g}" + (f"; FAILED: {', '.join(summary['failed'])}" if summary["failed"] else ""))
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="upper left")
    out = d / "compiling.png"
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return [out]
