"""multivm: per candidate and variant, the VMs' host RSS stacked, with the summed ideal curve."""
from __future__ import annotations

from pathlib import Path

from multivm import analysis, bench


def draw(d: Path, summary: dict) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    p = summary["params"]
    ok = [r for r in summary["rows"] if not r.get("error")]
    variants = [v for v in p["variants"] if any(r["variant"] == v for r in ok)]
    names = [n for n in p["candidates"] if any(r["candidate"] == n for r in ok)]
    if not ok:
        return []
    fig, axes = plt.subplots(len(names), len(variants), figsize=(6 * len(variants), 2.6 * len(names)), squeeze=False,
                             sharey=True)
    for i, name in enumerate(names):
        for j, variant in enumerate(variants):
            ax = axes[i][j]
            row = next((r for r in ok if r["candidate"] == name and r["variant"] == variant), None)
            recs = bench.load_group(d, name, variant)
            if not row or not recs:
                ax.set_title(f"{name}, {variant}: FAILED", fontsize=9)
                continue
            s = analysis.summed(recs)
            ax.stackplot(s["t"], [[v / 2**30 for v in vm] for vm in s["per_vm"]], labels=[f"VM {k}" for k in range(len(recs))],
                         alpha=0.8)
            ax.plot(s["t"], [v / 2**30 for v in s["ideal_total"]], "k--", lw=1, label="ideal (sum of in use)")
            ax.set_title(f"{name}, {variant}: {row['summed_gib_min']:.1f} GiB·min, peak {row['peak_total_gib']:.1f} GiB",
                         fontsize=9)
            ax.set_xlim(left=0)
            if j == 0:
                ax.set_ylabel("host RSS [GiB]")
            if i == len(names) - 1:
                ax.set_xlabel("time [s]")
            if i == 0 and j == 0:
                ax.legend(fontsize=7, loc="upper left")
    fig.suptitle(f"multivm: {p['vms']} x {p['mem_gib']} GiB VMs, kernel-build replay, time /{p['time_scale']:g}, "
                 f"memory x{p['mem_scale']:g}" + (f"; FAILED: {', '.join(summary['failed'])}" if summary["failed"] else ""),
                 fontsize=10)
    fig.tight_layout()
    out = d / "multivm.png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return [out]
