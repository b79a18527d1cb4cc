#!/usr/bin/env python3
"""HyperAlloc's shrink against both discard floors, interleaved (issue 12).

Per repetition: hvmm_limits --gib N (raw madvise and guest-mapped madvise, interleaved), then the
inflate VM (16 GiB, touch N GiB, free, shrink by N GiB) with each --hvmm binary in turn (ABAB: e.g.
main's and this branch's), so shrink and floors are measured minutes apart at most. Prints the shrink
breakdown (resize reply shrink_parts_ms) and the ratios, medians over --reps."""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inflate import one_vm  # noqa: E402
from lib import limits as host_limits  # noqa: E402
from lib import results  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hvmm", action="append", required=True, help="hvmm binary; repeat to compare (ABAB)")
    ap.add_argument("--limits", default="build/bench/limits/hvmm_limits")
    ap.add_argument("--gib", type=int, default=12)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", default="results")
    a = ap.parse_args()
    d = results.result_dir("shrink_vs_floor", a.out)
    results.write_json(d / "metadata.json", results.metadata(a.hvmm[0], vars(a)))
    rows = []
    for rep in range(a.reps):
        lim = host_limits.measure(Path(a.limits), a.gib)
        gm = lim["madvise_dontneed_guest_mapped"]
        floor = {"raw": gm["raw_gib_s"]["median"], "guest_mapped": gm["gib_s"]["median"]}
        for i, hvmm in enumerate(a.hvmm):
            rec = one_vm.run(hvmm, "hyperalloc", a.gib, 16, 2)
            reply = rec["shrink"]["reply"]
            ms = reply["elapsed_ms"]
            gib_s = a.gib / (ms / 1e3)
            row = {"rep": rep, "hvmm": hvmm, "shrink_ms": ms, "gib_s": gib_s, "parts": reply.get("shrink_parts_ms"),
                   "raw_gib_s": floor["raw"], "guest_mapped_gib_s": floor["guest_mapped"],
                   "of_raw": gib_s / floor["raw"], "of_guest_mapped": gib_s / floor["guest_mapped"],
                   "rss_discarded_gib": (rec["rss_before_shrink"] - rec["rss_after_shrink"]) / 2**30}
            rows.append(row)
            results.write_json(d / f"r{rep}_{i}.json", {**row, "record": rec, "limits": lim})
            parts = ", ".join(f"{k} {v:.2f}" for k, v in (row["parts"] or {}).items())
            print(f"rep {rep} [{i}] {hvmm}: shrink {ms:.2f} ms ({gib_s:.0f} GiB/s; parts ms: {parts or 'n/a'}); floors raw "
                  f"{floor['raw']:.0f} / guest-mapped {floor['guest_mapped']:.0f} GiB/s; ratio {row['of_raw']:.2f} / "
                  f"{row['of_guest_mapped']:.2f}; discarded {row['rss_discarded_gib']:.2f} GiB", flush=True)
    for i, hvmm in enumerate(a.hvmm):
        rs = [r for r in rows if r["hvmm"] == hvmm]
        med = lambda k: statistics.median(r[k] for r in rs)  # noqa: E731
        parts = {k: statistics.median((r["parts"] or {}).get(k, 0) for r in rs) for k in ("residency", "cas_walk", "discard", "other")}
        print(f"[{i}] {hvmm} median of {len(rs)}: shrink {med('shrink_ms'):.2f} ms, parts ms "
              + ", ".join(f"{k} {v:.2f}" for k, v in parts.items())
              + f"; raw floor {med('raw_gib_s'):.0f}, guest-mapped floor {med('guest_mapped_gib_s'):.0f} GiB/s; "
              f"ratio to raw {med('of_raw'):.2f}, to guest-mapped {med('of_guest_mapped'):.2f}")
    print(f"results in {d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
