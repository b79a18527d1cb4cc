#!/usr/bin/python3
"""The inflate benchmark's result path without a VM: synthetic raw records of every mechanism go
through analysis.row / summarize / table and the plots, as bench/inflate/bench.py sends them.
Checks that every mechanism is reported (a failed one as failed), the ratios, and that each plot file
is written."""
import pathlib
import sys
import tempfile
import unittest

BENCH = pathlib.Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from inflate import analysis  # noqa: E402

GIB = 1 << 30


def guest_output(n_gib: int, touch_ms: float, reuse_ms: float) -> str:
    b = n_gib * GIB
    return (f"alloc: {b} bytes in 4 KiB blocks, {touch_ms} ms, {int(b / 2**20 / touch_ms * 1e3)} MiB/s\n"
            "free: 1 region(s), 12.0 ms\n"
            f"alloc: {b} bytes in 4 KiB blocks, {reuse_ms} ms, {int(b / 2**20 / reuse_ms * 1e3)} MiB/s\n"
            "verify: ok, 1 blocks\n")


def record(mech: str, n: int, rep: int, shrink_ms: float, grow_ms: float, installs: int = 0) -> dict:
    return {"mechanism": mech, "n_gib": n, "rep": rep, "exit_code": 0,
            "guest_output": guest_output(n, 1000.0, 1100.0),
            "shrink": {"elapsed_ms": shrink_ms, "wall_ms": shrink_ms + 1},
            "grow": {"elapsed_ms": grow_ms, "wall_ms": grow_ms + 1},
            "rss_before_shrink": (n + 1) * GIB, "rss_after_shrink": GIB // 10, "rss_after_reuse": (n + 1) * GIB,
            "status_reused": {"detail": {"installs": installs}}}


class InflateResults(unittest.TestCase):
    def setUp(self):
        self.n = 4
        self.rows = []
        for rep in range(2):
            self.rows.append(analysis.row({"mechanism": "none", "n_gib": self.n, "rep": rep, "exit_code": 0,
                                           "guest_output": guest_output(self.n, 900.0, 900.0)}))
            self.rows.append(analysis.row(record("hyperalloc", self.n, rep, 10.0, 0.1, installs=2048)))
            self.rows.append(analysis.row(record("balloon", self.n, rep, 400.0, 300.0)))
            self.rows.append(analysis.row(record("balloon-huge", self.n, rep, 40.0, 20.0)))
            # virtio-mem failed in every run: it must show up as failed, not vanish.
            self.rows.append(analysis.row({"mechanism": "virtio-mem", "n_gib": self.n, "rep": rep,
                                           "error": "hvmm exited with 2"}))
        limits = {self.n: {"madvise_dontneed_gib_s": {"median": 400.0}, "populate_write_2mib_us": {"median": 90.0}}}
        self.summary = analysis.summarize(self.rows, limits)

    def test_every_mechanism_is_summarized(self):
        e = self.summary["by_n"][self.n]
        self.assertEqual(set(e["mechanisms"]), {"hyperalloc", "balloon", "balloon-huge", "virtio-mem"})
        self.assertEqual(e["mechanisms"]["virtio-mem"]["failed_runs"], 2)
        self.assertEqual(e["mechanisms"]["virtio-mem"]["runs"], 0)
        self.assertAlmostEqual(e["over_hyperalloc"]["balloon"]["shrink_ms"], 40.0)
        self.assertAlmostEqual(e["over_hyperalloc"]["balloon-huge"]["grow_ms"], 200.0)
        self.assertEqual(e["mechanisms"]["hyperalloc"]["installs"]["median"], 2048)

    def test_table_names_every_mechanism_and_the_reference(self):
        text = analysis.table(self.summary)
        for m in ("hyperalloc", "balloon", "balloon-huge", "virtio-mem"):
            self.assertIn(m, text)
        self.assertIn("virtio-mem 0 (failed 2", text)
        self.assertIn("reference (20 GiB VM shrunk by 18 GiB", text)

    def test_plots_are_written(self):
        try:
            from inflate import plots
        except ImportError as e:  # matplotlib comes from scripts/install-deps.sh
            self.skipTest(f"no matplotlib: {e}")
        with tempfile.TemporaryDirectory() as tmp:
            d = pathlib.Path(tmp)
            (d / "raw").mkdir()
            (d / "raw" / f"hyperalloc_{self.n}g_r0_rss.csv").write_text("t_s,rss_bytes\n0,1000\n1,2000\n")
            out = plots.draw(d, self.summary)
            for p in out:
                self.assertTrue(p.exists() and p.stat().st_size > 1000, p)


if __name__ == "__main__":
    unittest.main()
