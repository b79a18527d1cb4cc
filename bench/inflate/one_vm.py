"""One shrink in one VM, single-shot: touch N GiB, free it, shrink by N GiB, grow back, allocate N GiB
again. bench/shrink_vs_floor.py uses it; the inflate benchmark itself follows the reference's
schedule (schedule.py).

The guest and the host take turns through `barrier` steps; every host action is timed by the VMM
(elapsed_ms of the resize reply) and by this script (wall time around the request)."""
from __future__ import annotations

from lib import guest_lines
from lib.vm import Vm, read_rss

GIB = 1 << 30


def workload(n_gib: int) -> str:
    # The first `alloc` touches never-used memory in 4 KiB blocks, exactly like the reuse `alloc`: it is
    # the reuse's limit, measured in the same VM seconds before (the machine's load drifts).
    # barrier 0: the host shrinks; barrier 1: the host grows; barrier 2: the host reads the counters.
    return (f"alloc {n_gib}G; free; stats; barrier; stats; barrier; "
            f"alloc {n_gib}G; verify; stats; barrier")


def run(hvmm: str, mechanism: str, n_gib: int, mem_gib: int, cpus: int) -> dict:
    """Returns the raw record of one VM (status snapshots, resize replies, guest lines, RSS samples)."""
    rec = {"mechanism": mechanism, "n_gib": n_gib, "mem_gib": mem_gib, "cpus": cpus, "workload": workload(n_gib)}
    with Vm(hvmm, mem=f"{mem_gib}G", cpus=cpus, workload=workload(n_gib), reclaim=mechanism) as vm:
        rec["cmd"] = vm.cmd
        rec["status_touched"] = vm.wait_barrier(passed=0)
        rec["rss_before_shrink"] = read_rss(vm.proc.pid)
        rec["shrink"] = vm.timed_resize(f"{mem_gib - n_gib}G", vm.rss.t0)
        rec["rss_after_shrink"] = read_rss(vm.proc.pid)
        rec["status_shrunk"] = vm.status()
        vm.cont()
        vm.wait_barrier(passed=1)
        rec["grow"] = vm.timed_resize(f"{mem_gib}G", vm.rss.t0)
        rec["rss_after_grow"] = read_rss(vm.proc.pid)
        rec["status_grown"] = vm.status()
        vm.cont()
        rec["status_reused"] = vm.wait_barrier(passed=2)
        rec["rss_after_reuse"] = read_rss(vm.proc.pid)
        vm.cont()
        rec["exit_code"] = vm.wait(timeout=120)
        rec["rss_samples"] = vm.rss.samples
        rec["guest_output"] = vm.stdout()
        rec["stderr"] = vm.stderr()
    rec["guest"] = guest_lines.parse(rec["guest_output"])
    return rec

