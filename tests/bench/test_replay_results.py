#!/usr/bin/python3
"""The compiling and multivm benchmarks' result path without a VM: synthetic replay records (guest
lines as guest/replay.cpp prints them, host RSS samples on the same clock) go through the analysis,
the summary, the table and the plots, as bench/compiling/bench.py and bench/multivm/bench.py send
them. Checks the integrals against hand-computed values, RSS after each phase, the ratios, that a
failed candidate is reported as failed (never dropped), and the trace converter's file round trip."""
import json
import pathlib
import sys
import tempfile
import unittest

BENCH = pathlib.Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from compiling import analysis as comp  # noqa: E402
from compiling import plots as comp_plots  # noqa: E402
from compiling import trace_convert  # noqa: E402
from lib import replay as rp  # noqa: E402
from multivm import analysis as mvm  # noqa: E402
from multivm import plots as mvm_plots  # noqa: E402

GIB = 1 << 30
NS = 1_000_000_000


def guest_text(t0: float, inuse_gib: float) -> str:
    """A 60 s replay starting at host time t0: phases every 10 s, one sample per second, constant in-use."""
    lines = [f"replay: start host_ns={int(t0 * NS)} events=10 slots=2 duration_ms=60000 time_scale=1 mem_scale=1 "
             f"base_used=1000"]
    for i, name in enumerate(rp.PHASES):
        lines.append(f"replay: phase {name} host_ns={int((t0 + 10 * i) * NS)} t_ms={10000 * i}")
    for s in range(61):
        lines.append(f"replay: sample host_ns={int((t0 + s) * NS)} t_ms={1000 * s} inuse={int(inuse_gib * GIB)} "
                     f"replay=0 free=0")
    lines.append(f"replay: done host_ns={int((t0 + 60) * NS)} wall_ms=60000 max_lag_ms=3 oom_pages=0")
    return "\n".join(lines) + "\n"


def record(name: str, t0: float, rss_gib, inuse_gib: float = 1.0, tail_s: float = 1.0) -> dict:
    """rss_gib(t since start) -> GiB, sampled every 0.5 s from t0 - 1 to t0 + 60 + tail_s."""
    rss = [(t0 + k / 2, int(rss_gib(k / 2) * GIB)) for k in range(-2, int(2 * (60 + tail_s)) + 1)]
    status = {"detail": {"installs": 7}} if name == "hyperalloc" else {"detail": {"reported_bytes": 3 * GIB}}
    return {"candidate": name, **rp.CANDIDATES[name], "exit_code": 0, "status": status, "vmm_cpu_s": 12.5,
            "replay": rp.parse(guest_text(t0, inuse_gib)), "rss": rss}


class Compiling(unittest.TestCase):
    def setUp(self):
        # hyperalloc: 2 GiB throughout; balloon: 4 GiB for the first 30 s then 3; none: 6 GiB.
        self.recs = [record("hyperalloc", 1000.0, lambda t: 2.0),
                     record("balloon-fpr-buddy", 2000.0, lambda t: 4.0 if t < 30 else (3.0 if t < 60.5 else 0.5),
                            tail_s=2.0),
                     record("none-llfree", 3000.0, lambda t: 6.0),
                     {"candidate": "virtio-mem-auto", **rp.CANDIDATES["virtio-mem-auto"],
                      "error": "hvmm exited with 3: replay: FAILED"}]
        self.params = {"mem_gib": 16, "cpus": 2, "time_scale": 1.0, "mem_scale": 1.0, "nominal_s": 60.0,
                       "peak_demand_gib": 1.0}
        self.rows = [comp.row(r, 60.0, settle_s=1.0) for r in self.recs]
        self.summary = comp.summarize(self.rows, self.params)

    def test_integrals_and_phases(self):
        h, b, n = self.rows[0], self.rows[1], self.rows[2]
        self.assertAlmostEqual(h["gib_min_total"], 2.0, places=6)         # 2 GiB x 1 min
        self.assertAlmostEqual(h["gib_min_build"], 2.0 / 6, places=6)     # the first 10 s
        self.assertAlmostEqual(h["ideal_gib_min_total"], 1.0, places=6)
        self.assertAlmostEqual(b["gib_min_total"], 3.5, places=6)         # 30 s at 4 + 30 s at 3
        self.assertEqual(b["rss_after_build_gib"], 4.0)                   # at 10 s
        self.assertEqual(b["rss_after_idle_gib"], 3.0)                    # at 40 s
        self.assertEqual(b["rss_settled_gib"], 0.5)                       # 1 s after the end
        self.assertEqual(b["reported_gib"], 3.0)
        self.assertEqual(h["installs"], 7)
        self.assertAlmostEqual(n["ratio_to_hyperalloc_total"], 3.0, places=6)
        self.assertAlmostEqual(h["ratio_to_ideal_total"], 2.0, places=6)
        self.assertEqual(h["replay_s"], 60.0)

    def test_failed_candidate_is_reported(self):
        self.assertEqual(self.summary["failed"], ["virtio-mem-auto"])
        text = comp.table(self.summary)
        self.assertIn("virtio-mem-auto      FAILED: hvmm exited with 3", text)
        for name in ("hyperalloc", "balloon-fpr-buddy", "none-llfree"):
            self.assertIn(name, text)

    def test_plot_written(self):
        with tempfile.TemporaryDirectory() as d:
            d = pathlib.Path(d)
            (d / "raw").mkdir()
            for r in self.recs:
                (d / "raw" / f"{r['candidate']}.json").write_text(json.dumps(r))
            out = comp_plots.draw(d, self.summary)
            self.assertTrue(out[0].exists() and out[0].stat().st_size > 10_000)


class MultiVm(unittest.TestCase):
    def setUp(self):
        # Three VMs 20 s apart, each 2 GiB (none) or 1 GiB (hyperalloc) for its 60 s replay.
        self.groups = {name: [record(name, 1000.0 + 20 * i, lambda t, g=gib: g) for i in range(3)]
                       for name, gib in (("hyperalloc", 1.0), ("none-llfree", 2.0))}
        self.params = {"vms": 3, "mem_gib": 16, "cpus": 2, "time_scale": 1.0, "mem_scale": 1.0, "nominal_s": 60.0,
                       "peak_demand_gib": 1.0, "host_mem_gib": 23.5, "candidates": list(self.groups),
                       "variants": ["staggered"]}
        self.rows = [mvm.row(n, "staggered", g) for n, g in self.groups.items()]
        self.rows.append({"candidate": "balloon-fpr-buddy", "variant": "staggered", "error": "VM 1: timed out"})
        self.summary = mvm.summarize(self.rows, self.params)

    def test_sums(self):
        h, n = self.rows[0], self.rows[1]
        # Each VM has RSS samples from 1 s before its replay to 1 s after, clipped to [first start, last
        # end]: 61 + 62 + 61 s at 2 GiB (plus at most one 0.5 s grid step per VM) = 6.13 .. 6.18 GiB·min.
        self.assertGreaterEqual(n["summed_gib_min"], 2 * 184 / 60 - 1e-9)
        self.assertLessEqual(n["summed_gib_min"], 2 * 185.5 / 60 + 1e-9)
        self.assertAlmostEqual(n["peak_total_gib"], 6.0)  # all three overlap from 40 s to 60 s
        self.assertEqual(n["per_vm_peak_gib"], [2.0, 2.0, 2.0])
        self.assertAlmostEqual(h["saving_vs_none"], 0.5, places=2)
        self.assertAlmostEqual(n["ratio_to_hyperalloc"], 2.0, places=2)

    def test_table_and_plot(self):
        text = mvm.table(self.summary)
        self.assertIn("balloon-fpr-buddy    staggered    FAILED: VM 1: timed out", text)
        self.assertIn("-50%", text)
        with tempfile.TemporaryDirectory() as d:
            d = pathlib.Path(d)
            (d / "raw").mkdir()
            for name, g in self.groups.items():
                for i, r in enumerate(g):
                    (d / "raw" / f"{name}_staggered_vm{i}.json").write_text(json.dumps(r))
            out = mvm_plots.draw(d, self.summary)
            self.assertTrue(out[0].exists() and out[0].stat().st_size > 10_000)


class Trace(unittest.TestCase):
    def test_converter_round_trip(self):
        with tempfile.TemporaryDirectory() as d:
            d = pathlib.Path(d)
            (d / "phases.csv").write_text("t,phase\n0,start\n10,build_done\n12,clean_start\n13,clean_done\n"
                                          "15,drop_caches\n17,end\n")
            (d / "totals.csv").write_text("t,usage,rss,cache\n0.5,0,1048576,4194304\n5,0,1048576,8388608\n"
                                          "13,0,0,2097152\n16,0,0,0\n")
            (d / "processes.csv").write_text("id,comm,first_seen_s,last_seen_s,peak_rss_bytes\n"
                                             "0,cc1,1.0,2.0,2097152\n1,ld,1.5,400.0,4194304\n")
            events, info = trace_convert.convert(d, max_life=5.0)
            trace_convert.write(d / "t.bin", events, info)
            head, back = trace_convert.read(d / "t.bin")
            self.assertEqual(back, events)
            self.assertEqual(head["slots"], 2)
            self.assertEqual(head["duration_ms"], 17000)
            ends = {e[3]: e[0] for e in events if e[1] == trace_convert.END}
            self.assertEqual(ends[1], 6750)  # ld capped at 5 s after its start, plus half a sample
            self.assertEqual([e[2] for e in events if e[1] == trace_convert.PHASE], list(range(6)))
            self.assertEqual(events[-1][1:3], (trace_convert.PHASE, 5))


if __name__ == "__main__":
    unittest.main()
