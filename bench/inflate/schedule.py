"""inflate on the reference's schedule: one VM per (mechanism, variant) does several iterations of

    touch (VM - 2 GiB), free      -- the "touched" variant only
    shrink to 2 GiB               -- timed by the VMM (resize reply) and by this script
    wait                          -- the discard floors are measured now (hvmm_limits), and the
                                     first-touch VM boots
    grow back
    allocate (VM - 2 GiB), free   -- first reuse: every frame needs an install or a refault
    allocate (VM - 2 GiB), free   -- second reuse: warm

The "untouched" variant is the reference's: no touch and no allocation, so every shrink finds memory
the guest never used (allocating it would touch it for the next iteration).

Each reuse runs side by side with a VM without reclamation that allocates the same amount at the same
moment: first touch of never-used memory beside the first reuse, a warm re-allocation beside the
second (this host's first-touch speed drifts 10x between minutes, ARCHITECTURE.md "Benchmarks").
Both VMs have one workload vCPU, so on 2 cores neither waits for the other's vCPU.

The guest and the host take turns through `barrier` steps. Every host action records its monotonic
time (on the RSS sampler's clock) so the analysis can cut the RSS timeline into phases."""
from __future__ import annotations

import contextlib
import time
import traceback

from lib import guest_lines
from lib import limits as host_limits
from lib.vm import Vm, read_rss

GIB = 1 << 30
SHRUNK_GIB = 2
# The discard floors measured in each wait, and how much memory the 4 KiB-step probe discards (one
# madvise per 4 KiB: a whole VM's worth would take minutes).
FLOOR_PROBES = ("guest-mapped", "steps")
STEPS_4K_MIB = 1024
BARRIERS_TOUCHED = 3  # per iteration: after the touch, after the first reuse, after the second


def workload(variant: str, x_gib: int, iterations: int) -> str:
    if variant == "untouched":
        return "; ".join(["barrier"] * iterations)
    one = (f"alloc {x_gib}G; free; barrier; "                  # touched: the host shrinks, waits, grows
           f"alloc {x_gib}G; verify; free; stats; barrier; "   # first reuse; the host reads the counters
           f"alloc {x_gib}G; free; stats; barrier")            # second reuse
    return "; ".join([one] * iterations)


FIRST_TOUCH_WORKLOAD = "barrier; alloc {x}G; free; barrier; alloc {x}G; free; barrier"


def _floors(limits_bin, x_gib: int) -> dict:
    """The discard floors at this moment; an error is recorded, not raised (the VM's figures stand)."""
    try:
        return host_limits.measure(limits_bin, x_gib, reps=1, probes=FLOOR_PROBES, steps_4k_mib=STEPS_4K_MIB)
    except Exception as e:  # noqa: BLE001 - a failed probe is one missing comparison, not a failed run
        return {"error": f"{type(e).__name__}: {e}"}


class _Iteration:
    """The host's side of one touched iteration; marks are seconds on the reusing VM's RSS clock."""

    def __init__(self, vm: Vm, hvmm: str, limits_bin, p: dict, i: int):
        self.vm, self.hvmm, self.limits_bin, self.p, self.i = vm, hvmm, limits_bin, p, i
        self.rec: dict = {"iteration": i, "marks": {}, "rss": {}, "status": {}}

    def mark(self, name: str) -> None:
        self.rec["marks"][name] = time.monotonic() - self.vm.rss.t0

    def rss(self, name: str) -> None:
        self.rec["rss"][name] = read_rss(self.vm.proc.pid)

    def shrink_wait_grow(self, wait_s: float, stack: contextlib.ExitStack | None) -> Vm | None:
        """Shrink, wait (the floors and, given a stack to own it, the first-touch VM's boot), grow.
        Returns the first-touch VM, waiting at its first barrier."""
        vm, p, rec, t0 = self.vm, self.p, self.rec, self.vm.rss.t0
        self.rss("before_shrink")
        rec["shrink"] = vm.timed_resize(f"{SHRUNK_GIB}G", t0)
        self.rss("after_shrink")
        rec["status"]["shrunk"] = vm.status()
        end_wait = time.monotonic() + wait_s
        ft = None
        if stack is not None:
            rec["floors"] = _floors(self.limits_bin, p["x_gib"])
            ft = stack.enter_context(Vm(self.hvmm, mem=f"{p['mem_gib']}G", cpus=p["cpus"], reclaim="none",
                                        workload=FIRST_TOUCH_WORKLOAD.format(x=p["x_gib"])))
            ft.wait_barrier(passed=0, timeout=120)
        time.sleep(max(0.0, end_wait - time.monotonic()))
        rec["grow"] = vm.timed_resize(f"{p['mem_gib']}G", t0)
        self.rss("after_grow")
        rec["status"]["grown"] = vm.status()
        return ft

    def reuses(self, ft: Vm) -> None:
        """Both reuses, each released at the same moment as the first-touch VM's allocation."""
        vm, rec, base = self.vm, self.rec, BARRIERS_TOUCHED * self.i
        for k, name in ((1, "reuse1"), (2, "reuse2")):
            self.mark(f"{name}_start")
            ft.cont()
            vm.cont()
            rec["status"][name] = vm.wait_barrier(passed=base + k)
            self.mark(f"{name}_end")
            self.rss(f"after_{name}")
            ft.wait_barrier(passed=k, timeout=600)
        ft.cont()
        ft.wait(timeout=60)
        rec["first_touch_vm"] = {"cmd": ft.cmd, "exit_code": ft.proc.returncode,
                                 "guest": guest_lines.parse(ft.stdout()), "stderr": ft.stderr()[-500:]}


def run(hvmm: str, limits_bin, mechanism: str, variant: str, p: dict) -> dict:
    """The raw record of one VM's iterations. p: mem_gib, x_gib, cpus, iterations, wait_s, variant."""
    wl = workload(variant, p["x_gib"], p["iterations"])
    rec = {"mechanism": mechanism, "variant": variant, **{k: p[k] for k in ("mem_gib", "x_gib", "cpus", "iterations", "wait_s")},
           "workload": wl, "iters": []}
    with Vm(hvmm, mem=f"{p['mem_gib']}G", cpus=p["cpus"], workload=wl, reclaim=mechanism, sample_period=0.05) as vm:
        rec["cmd"] = vm.cmd
        try:
            _iterations(vm, hvmm, limits_bin, p, variant, rec["iters"])
            rec["exit_code"] = vm.wait(timeout=300)
        except Exception as e:  # noqa: BLE001 - the iterations that finished are kept
            rec["error"] = f"{type(e).__name__}: {e}"
            rec["traceback"] = traceback.format_exc()
        rec["rss_samples"] = list(vm.rss.samples)
        rec["guest_output"] = vm.stdout()
        rec["stderr"] = vm.stderr()
    rec["guest"] = guest_lines.parse(rec["guest_output"])
    if not rec.get("error") and rec.get("exit_code") != 0:
        rec["error"] = f"hvmm exited with {rec.get('exit_code')}: {rec['stderr'].strip()[-500:]}"
    return rec


def _iterations(vm: Vm, hvmm: str, limits_bin, p: dict, variant: str, out: list[dict]) -> None:
    per = BARRIERS_TOUCHED if variant == "touched" else 1
    for i in range(p["iterations"]):
        it = _Iteration(vm, hvmm, limits_bin, p, i)
        it.mark("start")
        it.rec["status"]["ready"] = vm.wait_barrier(passed=per * i)  # touched and freed (or idle)
        it.mark("ready")
        with contextlib.ExitStack() as stack:
            ft = it.shrink_wait_grow(p["wait_s"], stack if variant == "touched" else None)
            if ft is not None:
                it.reuses(ft)
        out.append(it.rec)
        vm.cont()
