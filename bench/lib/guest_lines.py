"""Parses the built-in guest's workload lines (guest/mem_steps.cpp), in the order they were printed."""
from __future__ import annotations

import re

_ALLOC = re.compile(r"^(alloc|alloc-huge): (\d+) bytes in (\d+) KiB blocks, ([\d.]+) ms, (\d+) MiB/s")
_FREE = re.compile(r"^free: (\d+) region\(s\), ([\d.]+) ms")
_VERIFY = re.compile(r"^verify: (ok|FAILED)(.*)")
_STATS = re.compile(r"^free=(\d+) used=(\d+) huge_free=(\d+)")


def parse(text: str) -> list[dict]:
    """One dict per recognised line: {"step": ..., fields...}; other lines are skipped."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if m := _ALLOC.match(line):
            out.append({"step": m[1], "bytes": int(m[2]), "block_kib": int(m[3]), "ms": float(m[4]),
                        "mib_s": int(m[5])})
        elif m := _FREE.match(line):
            out.append({"step": "free", "regions": int(m[1]), "ms": float(m[2])})
        elif m := _VERIFY.match(line):
            out.append({"step": "verify", "ok": m[1] == "ok", "text": line})
        elif m := _STATS.match(line):
            out.append({"step": "stats", "free": int(m[1]), "used": int(m[2]), "huge_free": int(m[3])})
    return out


def steps(text: str, name: str) -> list[dict]:
    """Every parsed line of one step kind, in order."""
    return [s for s in parse(text) if s["step"] == name]
