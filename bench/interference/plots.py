"""Plots of a stream/ftq result: the workload's rate over time per candidate with the resize moments
marked, and each candidate's mean and 1st percentile next to the baseline's (linear axes)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"baseline": "black", "hyperalloc": "tab:green", "balloon": "tab:red", "balloon-huge": "tab:orange",
          "virtio-mem": "tab:blue"}
LABEL = {"stream": ("STREAM copy bandwidth", "GB/s", 1.0), "ftq": ("FTQ work", "million units/s", 1e-6)}


def draw(d: Path, summary: dict) -> list[Path]:
    p, rows = summary["params"], summary["rows"]
    kind = p["kind"]
    title, unit, scale = LABEL[kind]
    ok = [r for r in rows if not r.get("error")]
    out = []

    # Timeline: one panel per candidate, same axes, so that lines do not hide each other.
    fig, axes = plt.subplots(len(ok) or 1, 1, figsize=(10, 1.8 * max(1, len(ok)) + 0.8), sharex=True, sharey=True,
                             squeeze=False)
    # One scale for every panel (shared y), tall enough for the highest bin of any candidate.
    top = 1.05 * max((v * scale for r in ok for v in r["series"]), default=1.0) or 1.0
    for ax, r in zip(axes[:, 0], ok):
        xs = [(i + 0.5) * p["bin_s"] for i in range(len(r["series"]))]
        ax.plot(xs, [v * scale for v in r["series"]], color=COLORS.get(r["candidate"], "gray"), lw=1)
        rz = summary.get("resizes", {}).get(r["candidate"], {})
        for what, color in (("shrink", "tab:purple"), ("grow", "tab:cyan")):
            if rz.get(what):
                ax.axvspan(rz[what]["start_s"], max(rz[what]["end_s"], rz[what]["start_s"] + 0.2), color=color,
                           alpha=0.35, label=f"{what} to {rz[what]['size']}")
        ax.set_ylabel(unit)
        ax.set_title(r["candidate"] + ("" if rz.get("shrink") else " (never resized)"), fontsize=9, loc="left")
        ax.set_ylim(0, top)
        if rz.get("shrink"):
            ax.legend(loc="lower right", fontsize=7)
    axes[-1, 0].set_xlabel("seconds since the workload started")
    fig.suptitle(f"{title} while the VM ({p['mem_gib']} GiB, {p['cpus']} vCPUs) is shrunk to {p['shrink_to']} and "
                 f"grown back ({p['bin_s']} s bins)", fontsize=10)
    fig.tight_layout()
    path = d / f"{kind}_timeline.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    out.append(path)

    # Summary: points (mean, 1st percentile, resize-window mean) per candidate, linear axis.
    fig, ax = plt.subplots(figsize=(8, 4))
    for i, r in enumerate(ok):
        c = COLORS.get(r["candidate"], "gray")
        ax.plot([i - 0.15], [r["mean"] * scale], "o", color=c, label="mean" if i == 0 else None)
        ax.plot([i], [r["p1"] * scale], "v", color=c, label="1st percentile" if i == 0 else None)
        if r.get("during_mean") is not None:
            ax.plot([i + 0.15], [r["during_mean"] * scale], "s", color=c,
                    label="mean in the resize window" if i == 0 else None)
    ax.set_xticks(range(len(ok)), [r["candidate"] for r in ok])
    ax.set_ylabel(unit)
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    ax.set_title(f"{title}: whole run and resize window per candidate", fontsize=10)
    failed = [r["candidate"] for r in rows if r.get("error")]
    if failed:
        ax.text(0.99, 0.02, "failed: " + ", ".join(failed), transform=ax.transAxes, ha="right", fontsize=8, color="red")
    fig.tight_layout()
    path = d / f"{kind}_summary.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    out.append(path)
    return out
