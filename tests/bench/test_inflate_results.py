#!/usr/bin/python3
"""The inflate benchmark's result path without a VM: synthetic raw records in schedule.py's format go
through analysis.iteration_rows / summarize / table / headlines and the plots, as bench/inflate/bench.py
sends them. Checks the figures of one iteration, that the first iteration is dropped, the checks that
flag a run (reused memory not reclaimed, repetitions that disagree, a failed candidate), and that each
plot file is written."""
import json
import pathlib
import sys
import tempfile
import unittest

BENCH = pathlib.Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from inflate import analysis  # noqa: E402
from lib import results  # noqa: E402

GIB = 1 << 30
MEM, X = 8, 6
FRAMES = X * 512


def alloc_line(ms: float) -> str:
    b = X * GIB
    return f"alloc: {b} bytes in 4 KiB blocks, {ms} ms, {int(b / 2**20 / ms * 1e3)} MiB/s"


def floors(raw=400.0, gm=300.0, raw2=350.0, raw4=6.0) -> dict:
    """hvmm_limits --probes guest-mapped,steps, as JSON (GiB/s medians)."""
    return {"madvise_dontneed_guest_mapped": {"gib_s": {"median": gm}, "raw_gib_s": {"median": raw}},
            "madvise_dontneed_2mib_steps": {"gib_s": {"median": raw2}},
            "madvise_dontneed_4kib_steps": {"gib_s": {"median": raw4}}}


def record(mech: str, variant: str = "touched", iterations: int = 3, shrink_ms=(50.0, 20.0, 20.0), grow_ms=0.5,
           reuse1_ms=(2000.0, 1000.0, 1000.0), first_touch_ms=1000.0, rss_gain=X * GIB, first_touch_installs=0,
           reinstalls=FRAMES) -> dict:
    """One VM's record: `shrink_ms[i]` and `reuse1_ms[i]` per iteration, reuse 2 and the warm
    allocation 500 ms; with HyperAlloc each first reuse pays `reinstalls` + `first_touch_installs`."""
    iters, out, t = [], [], 0.0
    hyper = mech == "hyperalloc"
    done_re = done_ft = 0  # the host's cumulative counters

    def st():
        return {"detail": {"installs": done_re + done_ft, "reinstalls": done_re, "first_touch_installs": done_ft}} if hyper else {}
    for i in range(iterations):
        grown = st()
        done_re, done_ft = done_re + reinstalls, done_ft + first_touch_installs
        it = {"iteration": i, "marks": {"start": t, "ready": t + 3, "reuse1_start": t + 6, "reuse1_end": t + 7,
                                        "reuse2_start": t + 7.01, "reuse2_end": t + 8},
              "rss": {"before_shrink": (X + 0.1) * GIB, "after_shrink": 0.1 * GIB, "after_grow": 0.1 * GIB,
                      "after_reuse1": 0.1 * GIB + rss_gain, "after_reuse2": 0.1 * GIB + rss_gain},
              "shrink": {"elapsed_ms": shrink_ms[i], "wall_ms": shrink_ms[i] + 1, "start_s": t + 3.1,
                         "end_s": t + 3.1 + shrink_ms[i] / 1e3, "reply": {"shrink_parts_ms": {"discard": shrink_ms[i] * 0.9}}},
              "grow": {"elapsed_ms": grow_ms, "wall_ms": grow_ms + 1, "start_s": t + 5.5, "end_s": t + 5.6},
              "status": {"grown": grown, "reuse1": st(), "reuse2": st()}}
        if variant == "touched":
            it["floors"] = floors()
            it["first_touch_vm"] = {"guest": [{"step": "alloc", "bytes": X * GIB, "ms": first_touch_ms},
                                              {"step": "alloc", "bytes": X * GIB, "ms": 500.0}]}
            out += [alloc_line(3000.0), "free: 1 region(s), 5.0 ms", alloc_line(reuse1_ms[i]), "verify: ok, 1 blocks",
                    "free: 1 region(s), 5.0 ms", alloc_line(500.0), "free: 1 region(s), 5.0 ms"]
        iters.append(it)
        t += 10
    return {"mechanism": mech, "variant": variant, "mem_gib": MEM, "x_gib": X, "iters": iters, "exit_code": 0,
            "guest_output": "\n".join(out) + "\n"}


PARAMS = {"mem_gib": MEM, "x_gib": X, "cpus": 1, "iterations": 3, "wait_s": 1.0}


class InflateResults(unittest.TestCase):
    def setUp(self):
        self.recs = [record("hyperalloc"),
                     # balloon: its reuse found 2 GiB still resident (RSS grew by 4 of 6 GiB)
                     record("balloon", shrink_ms=(900.0, 600.0, 610.0), grow_ms=400.0, rss_gain=4 * GIB),
                     # balloon-huge: repetitions of reuse / first touch that disagree (0.5 vs 1.0)
                     record("balloon-huge", shrink_ms=(60.0, 40.0, 40.0), grow_ms=20.0, reuse1_ms=(1000.0, 2000.0, 1000.0)),
                     # virtio-mem failed in its second iteration: what finished stands, it is reported failed
                     {**record("virtio-mem", iterations=2), "error": "RuntimeError: resize to 2G failed"},
                     record("hyperalloc", "untouched", shrink_ms=(5.0, 2.0, 3.0), grow_ms=0.4),
                     record("balloon", "untouched", shrink_ms=(500.0, 300.0, 300.0), grow_ms=300.0)]
        self.rows = [r for rec in self.recs for r in analysis.iteration_rows(rec)]
        self.summary = analysis.summarize(self.rows, PARAMS, {"populate_write_2mib_us": {"median": 90.0}})
        self.t = self.summary["candidates"]["touched"]

    def row(self, mech, i, variant="touched"):
        return next(r for r in self.rows if r["mechanism"] == mech and r["variant"] == variant and r["iteration"] == i)

    def test_one_iteration(self):
        r = self.row("hyperalloc", 1)
        self.assertTrue(r["kept"])
        self.assertFalse(self.row("hyperalloc", 0)["kept"])
        self.assertAlmostEqual(r["shrink_gib_s"], X / 0.020)
        self.assertAlmostEqual(r["floor_raw_ms"], X / 400.0 * 1e3)
        self.assertAlmostEqual(r["shrink_of_raw"], (X / 400.0 * 1e3) / 20.0)       # floor time / shrink time
        self.assertAlmostEqual(r["shrink_of_guest_mapped"], (X / 300.0 * 1e3) / 20.0)
        self.assertAlmostEqual(r["reuse1_over_first_touch"], 1.0)
        self.assertAlmostEqual(r["reuse2_over_warm"], 1.0)
        self.assertEqual(r["reuse1_installs"], FRAMES)
        self.assertEqual(r["reuse1_reinstalls"], FRAMES)
        self.assertEqual(r["reuse1_first_touch_installs"], 0)
        self.assertEqual(r["reuse2_installs"], 0)
        self.assertAlmostEqual(r["reuse1_from_reclaimed"], 1.0)
        self.assertIsNone(r["reclaimed_check"])
        self.assertAlmostEqual(r["grow_us_per_frame"], 0.5 * 1e3 / FRAMES)
        self.assertTrue(r["verify_ok"])

    def test_first_iteration_is_dropped(self):
        s = self.t["hyperalloc"]["figures"]["shrink_ms"]
        self.assertEqual((s["median"], s["min"], s["max"], s["n"]), (20.0, 20.0, 20.0, 2))
        self.assertEqual(self.t["hyperalloc"]["kept"], 2)

    def test_reuse_not_from_reclaimed_memory_is_flagged(self):
        self.assertAlmostEqual(self.row("balloon", 1)["reuse1_from_reclaimed"], 4 / 6)
        self.assertTrue(any("not every reused frame came from reclaimed memory" in f for f in self.t["balloon"]["flags"]))
        self.assertFalse(any("not every reused frame" in f for f in self.t["hyperalloc"]["flags"]))
        # HyperAlloc: a first-touch install means a frame the host never had, even if RSS grew enough.
        rows = analysis.iteration_rows(record("hyperalloc", first_touch_installs=10, reinstalls=FRAMES - 10))
        self.assertEqual(rows[1]["reuse1_first_touch_installs"], 10)
        self.assertIn("first-touch installs", rows[1]["reclaimed_check"])
        # and a reuse served by frames that were never reclaimed (0 installs)
        rows = analysis.iteration_rows(record("hyperalloc", reinstalls=0))
        self.assertIn("0 reinstalls", rows[1]["reclaimed_check"])

    def test_disagreeing_repetitions_are_flagged(self):
        flags = self.t["balloon-huge"]["flags"]
        self.assertTrue(any(f.startswith("reuse1_over_first_touch") and "disagree" in f for f in flags), flags)
        self.assertFalse(any("disagree" in f for f in self.t["hyperalloc"]["flags"]))
        # a goal whose repetitions lie on both sides of it is not resolved
        rows = analysis.iteration_rows(record("hyperalloc", reuse1_ms=(1000.0, 1050.0, 1250.0)))
        s = analysis.summarize(rows, PARAMS)
        self.assertTrue(any("both sides of the goal 0.9" in f for f in s["candidates"]["touched"]["hyperalloc"]["flags"]))

    def test_failed_candidate_is_reported_with_its_finished_iterations(self):
        self.assertIn("virtio-mem (touched)", self.summary["failed"])
        self.assertEqual(self.t["virtio-mem"]["kept"], 1)
        self.assertIn("resize to 2G failed", self.t["virtio-mem"]["error"])

    def test_ratios_goals_and_untouched(self):
        self.assertAlmostEqual(self.t["balloon"]["over_hyperalloc"]["shrink_ms"], 605.0 / 20.0)
        u = self.summary["candidates"]["untouched"]
        self.assertAlmostEqual(u["hyperalloc"]["figures"]["shrink_ms"]["median"], 2.5)
        self.assertNotIn("reuse1_gib_s", u["hyperalloc"]["figures"])
        self.assertTrue(self.summary["goals"]["reuse"]["met"])
        self.assertEqual(self.summary["goals"]["shrink_raw"]["met"], (X / 400.0 * 1e3) / 20.0 >= 0.8)

    def test_table_and_headlines(self):
        text = analysis.table(json.loads(json.dumps(self.summary)))  # as plot/index read it back
        for m in analysis.MECHANISMS:
            self.assertIn(m, text)
        self.assertIn("== untouched ==", text)
        self.assertIn("FLAGS:", text)
        self.assertIn("FAILED: virtio-mem (touched)", text)
        self.assertIn("reference (20 GiB VM shrunk by 18 GiB", text)
        self.assertIn("605.00 (600.00-610.00)", text)  # median (min-max) of the kept iterations
        h = {r["figure"]: r for r in analysis.headlines(self.summary)}
        self.assertAlmostEqual(h["balloon / hyperalloc shrink time"]["hvmm"], 605.0 / 20.0)
        self.assertAlmostEqual(h["balloon / hyperalloc shrink time"]["reference"], 21000 / 58)
        self.assertAlmostEqual(h["hyperalloc first reuse / first touch (side by side)"]["hvmm"], 1.0)
        self.assertIn(f"{FRAMES}", h["hyperalloc first reuse / first touch (side by side)"]["note"])

    def test_plots_are_written(self):
        try:
            from inflate import plots
        except ImportError as e:  # matplotlib comes from scripts/install-deps.sh
            self.skipTest(f"no matplotlib: {e}")
        with tempfile.TemporaryDirectory() as tmp:
            d = pathlib.Path(tmp)
            (d / "raw").mkdir()
            for rec in self.recs:
                name = f"{rec['variant']}_{rec['mechanism']}"
                results.write_rss_csv(d / "raw" / f"{name}_rss.csv", [(t / 10, int(t * GIB / 20)) for t in range(300)])
                results.write_json(d / "raw" / f"{name}.json", rec)
            out = plots.draw(d, json.loads(json.dumps(self.summary)))
            self.assertEqual([p.name for p in out], ["inflate_shrink_grow.png", "inflate_reuse.png", "inflate_rss.png"])
            for p in out:
                self.assertTrue(p.exists() and p.stat().st_size > 1000, p)

    def test_phase_axis_and_reuse_labels(self):
        from inflate import plots
        it = self.recs[0]["iters"][1]
        b = plots.phase_bounds(it)
        self.assertEqual(len(b), len(plots.PHASES) + 1)
        self.assertEqual([plots.warp(t, b) for t in b], list(range(len(b))))
        self.assertIsNone(plots.warp(b[-1] + 1, b))
        c = self.t["hyperalloc"]
        self.assertIn(f"{FRAMES} / 0 installs", plots.reuse_label("hyperalloc", c))
        zero = analysis.summarize(analysis.iteration_rows(record("hyperalloc", reinstalls=0)), PARAMS)
        label = plots.reuse_label("hyperalloc", zero["candidates"]["touched"]["hyperalloc"])
        self.assertIn("0 installs: NOT reclaimed memory", label)
        self.assertIn("NOT all from", plots.reuse_label("balloon", self.t["balloon"]))


if __name__ == "__main__":
    unittest.main()
