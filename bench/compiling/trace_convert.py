#!/usr/bin/python3
"""Converts a recorded build trace (CSV: totals.csv, processes.csv, phases.csv, as in
shared/data/kernel-build-trace) into hvmm's binary replay trace (TRACE_FORMAT.md, abi/trace.hpp).

    bench/compiling/trace_convert.py TRACE_DIR OUT.trace [--max-life 5] [--json INFO.json]

What the conversion decides (stated in the trace info it prints and writes):
- Process lifetimes: [first_seen, min(last_seen, first_seen + max_life)] + half a sampling interval.
  The recorded table merges processes that reused a PID (a `cc1` "living" 556 s, into the idle phase
  after the build), so long lifetimes are capped; 95 % of cc1 records are under 2 s.
- Process sizes: peak VmRSS counts shared pages (libc, the compiler's text) in every process, so the
  sum over live processes overstates the group's anonymous memory. Every size is multiplied by one
  factor that makes the time integral of live process memory equal that of totals.csv's `rss`.
- Page cache: one event per sample whose `cache` level changed.
- Phases: from phases.csv (start, build_done, clean_start, clean_done, drop_caches, end).
Scale factors for memory and time are not applied here: they are the replay step's parameters."""
from __future__ import annotations

import argparse
import csv
import json
import struct
import sys
from pathlib import Path

MAGIC = b"HVMMTRC1"
VERSION = 1
HEADER = struct.Struct("<8sIIIIII Q 4Q")     # abi/trace.hpp Header (72 bytes)
EVENT = struct.Struct("<IHHII")               # abi/trace.hpp Event (16 bytes)
assert HEADER.size == 72 and EVENT.size == 16
START, END, CACHE, PHASE = 1, 2, 3, 4
PHASES = ["start", "build_done", "clean_start", "clean_done", "drop_caches", "end"]  # -> Phase 0..5
MAX_SLOTS = 1024
SAMPLE_S = 0.5


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def convert(trace_dir: Path, max_life: float = 5.0) -> tuple[list[tuple], dict]:
    """Returns (events, info); events are (t_ms, kind, arg, slot, kib) tuples in file order."""
    totals = read_csv(trace_dir / "totals.csv")
    procs = read_csv(trace_dir / "processes.csv")
    phases = {r["phase"]: float(r["t"]) for r in read_csv(trace_dir / "phases.csv")}
    missing = [p for p in PHASES if p not in phases]
    if missing:
        raise ValueError(f"phases.csv lacks {', '.join(missing)}")
    if [phases[p] for p in PHASES] != sorted(phases[p] for p in PHASES):
        raise ValueError("phases.csv: phases out of order")
    end_t = phases["end"]

    life = []  # (start, end, bytes)
    for p in procs:
        a, b, size = float(p["first_seen_s"]), float(p["last_seen_s"]), int(p["peak_rss_bytes"])
        if b < a or size < 0:
            raise ValueError(f"processes.csv: bad row {p}")
        e = min(min(b, a + max_life) + SAMPLE_S / 2, end_t)
        if size > 0 and a < end_t:
            life.append((a, e, size))

    # Calibration: the integral of live process bytes equals the integral of totals' rss.
    ts = [float(r["t"]) for r in totals]
    rss = [int(r["rss"]) for r in totals]
    rss_int = sum((t1 - t0) * (r0 + r1) / 2 for t0, t1, r0, r1 in zip(ts, ts[1:], rss, rss[1:]))
    live_int = sum((e - a) * size for a, e, size in life)
    factor = min(1.0, rss_int / live_int) if live_int else 1.0

    events: list[tuple] = []
    for i, name in enumerate(PHASES):
        events.append((round(phases[name] * 1000), PHASE, i, 0, 0))
    last = None
    for r in totals:
        kib = int(r["cache"]) // 1024
        t = float(r["t"])
        if kib != last and t <= end_t:
            events.append((round(t * 1000), CACHE, 0, 0, kib))
            last = kib
    # Slots: the lowest free one at each start (ends at the same ms first, so slots are reused).
    raw = []
    for idx, (a, e, size) in enumerate(life):
        kib = max(4, int(size * factor) // 4096 * 4)  # whole 4 KiB pages
        raw.append((round(a * 1000), START, idx, kib))
        raw.append((round(e * 1000), END, idx, 0))
    raw.sort(key=lambda x: (x[0], 0 if x[1] == END else 1, x[2]))
    free_slots: list[int] = []
    next_slot = 0
    slot_of: dict[int, int] = {}
    import heapq
    for t, kind, idx, kib in raw:
        if kind == START:
            s = heapq.heappop(free_slots) if free_slots else next_slot
            if s == next_slot:
                next_slot += 1
            slot_of[idx] = s
            events.append((t, START, 0, s, kib))
        else:
            s = slot_of.pop(idx)
            heapq.heappush(free_slots, s)
            events.append((t, END, 0, s, 0))
    if next_slot > MAX_SLOTS:
        raise ValueError(f"{next_slot} processes alive at once; the format allows {MAX_SLOTS}")
    # File order: by time; at one time phase marks first, then ends, cache, starts.
    order = {PHASE: 0, END: 1, CACHE: 2, START: 3}
    events.sort(key=lambda ev: (ev[0], order[ev[1]], ev[3]))
    # The end phase is the last event: nothing may follow it.
    if events[-1][1] != PHASE or events[-1][2] != len(PHASES) - 1:
        end_ms = round(end_t * 1000)
        events = [ev for ev in events if not (ev[1] == PHASE and ev[2] == len(PHASES) - 1)]
        events = [ev if ev[0] <= end_ms else (end_ms, *ev[1:]) for ev in events]
        events.sort(key=lambda ev: (ev[0], order[ev[1]], ev[3]))
        events.append((end_ms, PHASE, len(PHASES) - 1, 0, 0))

    info = simulate(events)
    info.update({"processes": len(life), "slots": next_slot, "size_factor": factor, "max_life_s": max_life,
                 "events": len(events), "duration_s": events[-1][0] / 1000,
                 "phases_s": {n: phases[n] for n in PHASES}})
    return events, info


def simulate(events: list[tuple]) -> dict:
    """Replays the events at scale 1: peak in-use KiB and the in-use level at each phase's start."""
    procs: dict[int, int] = {}
    cache = peak = 0
    at_phase = {}
    for t, kind, arg, slot, kib in events:
        if kind == START:
            procs[slot] = kib
        elif kind == END:
            procs.pop(slot, None)
        elif kind == CACHE:
            cache = kib
        else:
            at_phase[PHASES[arg]] = sum(procs.values()) + cache
        peak = max(peak, sum(procs.values()) + cache)
    return {"peak_kib": peak, "inuse_kib_at_phase": at_phase}


def write(path: Path, events: list[tuple], info: dict) -> None:
    body = b"".join(EVENT.pack(*ev) for ev in events)
    head = HEADER.pack(MAGIC, VERSION, HEADER.size, EVENT.size, len(events), info["slots"], events[-1][0],
                       info["peak_kib"], 0, 0, 0, 0)
    path.write_bytes(head + body)


def read(path: Path) -> tuple[dict, list[tuple]]:
    """Parses a trace file (for tests and the benchmark's expected curves)."""
    data = path.read_bytes()
    magic, ver, hb, eb, count, slots, dur, peak, *_ = HEADER.unpack_from(data)
    if magic != MAGIC or ver != VERSION or hb != HEADER.size or eb != EVENT.size or len(data) != hb + count * eb:
        raise ValueError(f"{path}: not a version-{VERSION} hvmm trace")
    events = [EVENT.unpack_from(data, hb + i * eb) for i in range(count)]
    return {"events": count, "slots": slots, "duration_ms": dur, "peak_kib": peak}, events


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("trace_dir", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--max-life", type=float, default=5.0, help="cap on a process's lifetime in seconds (default 5)")
    ap.add_argument("--json", type=Path, help="also write the conversion's info here")
    a = ap.parse_args()
    try:
        events, info = convert(a.trace_dir, a.max_life)
    except (OSError, ValueError, KeyError) as e:
        print(f"trace_convert: {e}", file=sys.stderr)
        return 1
    write(a.out, events, info)
    if a.json:
        a.json.write_text(json.dumps(info, indent=2) + "\n")
    print(f"trace_convert: {a.out}: {info['events']} events, {info['processes']} processes in {info['slots']} slots, "
          f"{info['duration_s']:.1f} s, peak {info['peak_kib'] / 2**20:.2f} GiB unscaled, "
          f"process sizes x{info['size_factor']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
