#!/usr/bin/python3
"""The index of `bench/run.py bench-plot all` (bench/lib/index.py) on synthetic summaries of every
benchmark, without KVM: each benchmark's headline ratios stand beside the reference's, every plot is
linked relative to the index, and a failed candidate or a benchmark that stopped is visible."""
import pathlib
import sys
import tempfile
import unittest

BENCH = pathlib.Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from lib import index  # noqa: E402


def stat(v):
    return {"median": v, "min": v, "max": v, "n": 2, "spread": 0.0}


INFLATE = {"params": {"x_gib": 6}, "reference_shrunk_gib": 18,
           "candidates": {"touched": {
               "hyperalloc": {"figures": {"shrink_gib_s": stat(200.0), "shrink_ms": stat(30.0), "shrink_of_raw": stat(0.85),
                                          "shrink_of_guest_mapped": stat(0.95), "grow_us_per_frame": stat(0.05),
                                          "reuse1_gib_s": stat(2.0), "reuse1_over_first_touch": stat(0.93),
                                          "reuse1_installs": stat(3072), "reuse2_over_warm": stat(1.0), "reuse2_installs": stat(0)}},
               "balloon": {"figures": {"shrink_ms": stat(600.0)}},
               "balloon-huge": {"figures": {"shrink_ms": stat(60.0)}}}},
           "failed": ["virtio-mem (touched)"]}
COMPILING = {"rows": [{"candidate": "hyperalloc", "gib_min_total": 1.5, "ratio_to_ideal_total": 1.3, "rss_after_drop_caches_gib": 0.5},
                      {"candidate": "balloon-fpr-buddy", "gib_min_total": 1.8, "rss_after_drop_caches_gib": 2.0},
                      {"candidate": "none-buddy", "gib_min_total": 2.0},
                      {"candidate": "virtio-mem-auto", "error": "hvmm exited with 3"}],
             "failed": ["virtio-mem-auto"]}
MULTIVM = {"rows": [{"candidate": "hyperalloc", "variant": "staggered", "saving_vs_none": 0.2},
                    {"candidate": "balloon-fpr-buddy", "variant": "staggered", "saving_vs_none": 0.1},
                    {"candidate": "hyperalloc", "variant": "simultaneous", "saving_vs_none": 0.15},
                    {"candidate": "none-llfree", "variant": "staggered", "saving_vs_none": 0.0}], "failed": []}
STREAM = {"rows": [{"candidate": "baseline", "p1_vs_baseline": 1.0, "mean_vs_baseline": 1.0},
                   {"candidate": "hyperalloc", "p1_vs_baseline": 0.995, "mean_vs_baseline": 0.998},
                   {"candidate": "balloon", "p1_vs_baseline": 0.6, "mean_vs_baseline": 0.9}]}


class Index(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        base = pathlib.Path(self.tmp.name)
        self.idx = base / "all" / "20261202-130000"
        self.idx.mkdir(parents=True)
        self.outcomes = []
        for name, summary, failed in (("inflate", INFLATE, INFLATE["failed"]), ("compiling", COMPILING, COMPILING["failed"]),
                                      ("multivm", MULTIVM, []), ("stream", STREAM, [])):
            d = base / name / "20261202-130001"
            d.mkdir(parents=True)
            plot = d / f"{name}_plot.png"
            plot.write_bytes(b"png")
            (d / "summary.txt").write_text({"compiling": "table\nWARNING: a guest fell up to 28.0 s behind the trace\n",
                                            "inflate": "table\nFLAGS:\n  hyperalloc (touched): reuse1_over_first_touch: "
                                                       "not resolved\nFAILED: virtio-mem (touched)\n"}.get(name, "table\n"))
            self.outcomes.append({"benchmark": name, "dir": d, "summary": summary, "plots": [plot], "failed": failed,
                                  "wall_s": 120.0})
        self.outcomes.append({"benchmark": "ftq", "error": "SystemExit: run.py: no hvmm binary found", "plots": [],
                              "failed": [], "wall_s": 0.1})
        self.text = index.write(self.idx, self.outcomes, {"command": "bench/run.py bench-plot all --short",
                                                          "wall_s": 1500.0, "date": "2026-12-02"}).read_text()

    def tearDown(self):
        self.tmp.cleanup()

    def test_every_plot_is_linked_relative_to_the_index(self):
        for name in ("inflate", "compiling", "multivm", "stream"):
            rel = f"../../{name}/20261202-130001/{name}_plot.png"
            self.assertIn(f"![{name}_plot.png]({rel})", self.text)
            self.assertTrue((self.idx / rel).resolve().exists())

    def test_headlines_beside_the_reference(self):
        lines = self.text.splitlines()

        def row(figure):
            return next(line for line in lines if line.startswith(f"| {figure} |"))
        self.assertEqual(row("GiB·min balloon-fpr-buddy / hyperalloc"), f"| GiB·min balloon-fpr-buddy / hyperalloc | 1.2 | {431 / 357:.3g} |  |")
        self.assertIn("| – |", row("GiB·min virtio-mem-auto / hyperalloc"))  # failed: no figure, the reference stays
        self.assertIn(f"| {484 / 357:.3g} |", row("GiB·min virtio-mem-auto / hyperalloc"))
        self.assertEqual(row("summed GiB·min saving vs none, hyperalloc (staggered)").split(" | ")[1:3], ["0.2", "0.42"])
        self.assertEqual(row("summed GiB·min saving vs none, hyperalloc (simultaneous)").split(" | ")[1:3], ["0.15", "–"])
        self.assertEqual(row("stream 1st percentile / baseline, balloon").split(" | ")[1:3], ["0.6", f"{30.9 / 69.0:.3g}"])
        self.assertEqual(row("balloon / hyperalloc shrink time").split(" | ")[1:3], ["20", f"{21000 / 58:.0f}"])
        self.assertIn("| 0.93 |", row("hyperalloc first reuse / first touch (side by side)"))
        self.assertIn("installs per first reuse: 3072", row("hyperalloc first reuse / first touch (side by side)"))

    def test_failures_are_visible(self):
        self.assertIn("status: FAILED: inflate, compiling, ftq", self.text)
        self.assertIn("| compiling | FAILED: virtio-mem-auto | 2.0 min |", self.text)
        self.assertIn("**did not finish**: SystemExit: run.py: no hvmm binary found", self.text)
        self.assertIn("wall time: 25.0 min", self.text)

    def test_warnings_and_flags_of_the_tables_are_repeated(self):
        self.assertIn("- WARNING: a guest fell up to 28.0 s behind the trace", self.text)
        self.assertIn("- hyperalloc (touched): reuse1_over_first_touch: not resolved", self.text)
        self.assertNotIn("- FAILED: virtio-mem", self.text)  # said once, as the failed candidates
        self.assertEqual(self.text.count("Warnings and flags from the table"), 2)

    def test_every_benchmark_has_headlines(self):
        for name, summary in (("inflate", INFLATE), ("compiling", COMPILING), ("multivm", MULTIVM), ("stream", STREAM),
                              ("ftq", {"rows": STREAM["rows"]})):
            rows = index.headlines(name, summary)
            self.assertTrue(rows, name)
            self.assertTrue(any(r["reference"] is not None for r in rows), name)


if __name__ == "__main__":
    unittest.main()
