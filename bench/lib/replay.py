"""What the compiling and multivm benchmarks share: the trace file, the guest's `replay` lines
(guest/replay.cpp) on the host's clock (the guest stamps them with hvmm's steady_clock, which is
CLOCK_MONOTONIC like Python's time.monotonic, so they line up with lib/vm.py's RSS samples), the
VMM's CPU time, integrals and values at phase boundaries, the progress line."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

GIB = 1 << 30
PHASES = ["build", "delay", "clean", "idle", "drop_caches", "end"]
TRACE_DIR = Path(os.environ.get("HVMM_TRACE_DIR", "/work/shared/data/kernel-build-trace"))
CONVERTER = Path(__file__).resolve().parents[1] / "compiling" / "trace_convert.py"

_START = re.compile(r"^replay: start host_ns=(\d+) events=(\d+) slots=(\d+) duration_ms=(\d+) "
                    r"time_scale=(\S+) mem_scale=(\S+) base_used=(\d+)")
_PHASE = re.compile(r"^replay: phase (\S+) host_ns=(\d+) t_ms=(\d+)")
_SAMPLE = re.compile(r"^replay: sample host_ns=(\d+) t_ms=(\d+) inuse=(\d+) replay=(\d+) free=(\d+)")
_DONE = re.compile(r"^replay: done host_ns=(\d+) wall_ms=(\d+) max_lag_ms=(\d+) oom_pages=(\d+)")


def make_trace(out_dir: Path, trace_dir: Path = TRACE_DIR) -> tuple[Path, dict]:
    """Converts the CSV trace into out_dir/trace.bin (+ trace.json with the conversion's choices)."""
    import json
    out, info = out_dir / "trace.bin", out_dir / "trace.json"
    r = subprocess.run([sys.executable, str(CONVERTER), str(trace_dir), str(out), "--json", str(info)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"trace conversion failed: {r.stderr.strip()}")
    return out, json.loads(info.read_text())


def parse(text: str) -> dict:
    """The replay lines of one guest: start, phases, samples (host_ns, t_ms, inuse bytes), done."""
    out: dict = {"start": None, "phases": [], "samples": [], "done": None}
    for line in text.splitlines():
        line = line.strip()
        if m := _START.match(line):
            out["start"] = {"host_ns": int(m[1]), "events": int(m[2]), "duration_ms": int(m[4]),
                            "time_scale": m[5], "mem_scale": m[6], "base_used": int(m[7])}
        elif m := _PHASE.match(line):
            out["phases"].append({"phase": m[1], "host_ns": int(m[2]), "t_ms": int(m[3])})
        elif m := _SAMPLE.match(line):
            out["samples"].append((int(m[1]), int(m[2]), int(m[3])))
        elif m := _DONE.match(line):
            out["done"] = {"host_ns": int(m[1]), "wall_ms": int(m[2]), "max_lag_ms": int(m[3]), "oom_pages": int(m[4])}
    return out


def integral_gib_min(series: list[tuple[float, float]], t0: float, t1: float) -> float:
    """Integral of (t seconds, bytes) samples over [t0, t1] in GiB·min, each sample held until the next
    (what was last measured; never a value from after t1, e.g. the VM's exit)."""
    if t1 <= t0 or not series:
        return 0.0
    pts = [(t0, value_at(series, t0))] + [(t, v) for t, v in series if t0 < t < t1] + [(t1, 0.0)]
    return sum((b[0] - a[0]) * a[1] for a, b in zip(pts, pts[1:])) / GIB / 60


def value_at(series: list[tuple[float, float]], t: float) -> float:
    """The last sample at or before t (the first one before the series starts)."""
    last = series[0][1] if series else 0.0
    for ts, v in series:
        if ts > t:
            break
        last = v
    return last


def phase_windows(replay: dict) -> dict[str, tuple[float, float]]:
    """Each phase's [start, end] in host seconds (the end phase: its mark to the replay's end)."""
    marks = [(p["phase"], p["host_ns"] / 1e9) for p in replay["phases"]]
    end = replay["done"]["host_ns"] / 1e9 if replay.get("done") else (marks[-1][1] if marks else 0)
    return {name: (t, marks[i + 1][1] if i + 1 < len(marks) else end) for i, (name, t) in enumerate(marks)}


def read_cpu_s(pid: int) -> float | None:
    """utime + stime of a process (all threads) in seconds, None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class Progress:
    """One progress line, rewritten in place on a terminal, else printed every `every` seconds."""

    def __init__(self, name: str, every: float = 30.0):
        self.name, self.every, self.last = name, every, 0.0
        self.tty = sys.stdout.isatty()

    def show(self, text: str, force: bool = False):
        now = time.monotonic()
        if self.tty:
            print(f"\r{self.name}: {text}\033[K", end="", flush=True)
        elif force or now - self.last >= self.every:
            print(f"{self.name}: {text}", flush=True)
            self.last = now

    def done(self):
        if self.tty:
            print(flush=True)


# The candidates the benchmarks compare (issue 10): mechanism, --auto-reclaim, guest allocator.
CANDIDATES = {
    "hyperalloc": {"reclaim": "hyperalloc", "auto": "", "alloc": "llfree"},
    "balloon-fpr-llfree": {"reclaim": "balloon", "auto": "", "alloc": "llfree"},
    "balloon-fpr-buddy": {"reclaim": "balloon", "auto": "", "alloc": "buddy"},
    "balloon-huge-fpr": {"reclaim": "balloon-huge", "auto": "", "alloc": "llfree"},
    "virtio-mem-auto": {"reclaim": "virtio-mem", "auto": "", "alloc": "llfree"},
    "none-llfree": {"reclaim": "none", "auto": None, "alloc": "llfree"},
    "none-buddy": {"reclaim": "none", "auto": None, "alloc": "buddy"},
}


def candidate_args(name: str) -> dict:
    c = CANDIDATES[name]
    flags = ["--reclaim", c["reclaim"]] + (["--auto-reclaim"] if c["auto"] is not None else [])
    return {**c, "flags": " ".join(flags + ["--guest-alloc", c["alloc"]])}


class ReplayRun:
    """One VM replaying the trace (lib/vm.py starts it): `replay TS MS; barrier`, so that the host can
    read the VMM's counters and CPU time after the replay, before the VM exits."""

    def __init__(self, hvmm: str, name: str, trace: Path, time_scale: float, mem_scale: float, mem_gib: int,
                 cpus: int, sample_s: float = 0.5):
        from lib.vm import Vm
        c = CANDIDATES[name]
        self.name = name
        self.workload = f"replay {time_scale:g} {mem_scale:g} {int(sample_s * 1000)}ms; barrier"
        self.vm = Vm(hvmm, mem=f"{mem_gib}G", cpus=cpus, workload=self.workload, reclaim=c["reclaim"],
                     auto_reclaim=c["auto"], extra=["--trace", str(trace), "--guest-alloc", c["alloc"]],
                     sample_period=sample_s)
        self.started = time.monotonic()

    def finished(self) -> bool:
        return self.vm.proc.poll() is not None or "replay: done" in self.vm.stdout()

    def rss_now(self) -> int:
        s = self.vm.rss.samples
        return s[-1][1] if s else 0

    def phase_now(self) -> str:
        ph = parse(self.vm.stdout())["phases"]
        return ph[-1]["phase"] if ph else "boot"

    def finish(self) -> dict:
        """After finished(): the record (status, CPU time, replay lines, RSS samples on the monotonic
        clock). Sets "error" instead of raising when the VM failed."""
        vm = self.vm
        rec = {"candidate": self.name, **CANDIDATES[self.name], "cmd": vm.cmd, "workload": self.workload}
        try:
            if vm.proc.poll() is None:
                rec["status"] = vm.wait_barrier(timeout=60)
                rec["vmm_cpu_s"] = read_cpu_s(vm.proc.pid)
                vm.cont()
            rec["exit_code"] = vm.wait(timeout=60)
        except Exception as e:  # one failed VM must not lose the others' data
            rec["error"] = f"{type(e).__name__}: {e}"
        rec["stderr"] = vm.stderr()
        out = vm.stdout()
        rec["guest_output_tail"] = out[-3000:]
        rec["replay"] = parse(out)
        rec["rss"] = [(vm.rss.t0 + t, b) for t, b in vm.rss.samples]
        if not rec.get("error"):
            if rec.get("exit_code") != 0:
                rec["error"] = f"hvmm exited with {rec.get('exit_code')}: {rec['stderr'].strip()[-300:]} " \
                               f"{' '.join(l for l in out.splitlines()[-3:])}"
            elif not rec["replay"]["done"]:
                rec["error"] = "the replay did not finish"
        return rec

    def close(self):
        self.vm.close()
