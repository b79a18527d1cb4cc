#!/usr/bin/python3
"""The stream/ftq benchmarks' result path without a VM: synthetic guest output of every candidate goes
through samples.py, bench.summarize / table and the plots, as bench/interference/bench.py sends it.
Checks the binning (bytes conserved, a stall shows up where it happened), the figures against the
baseline, that a failed candidate is reported as failed, and that each plot file is written."""
import pathlib
import sys
import tempfile
import unittest

BENCH = pathlib.Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

from interference import bench, plots, samples  # noqa: E402

MB = 1 << 20


def stream_output(duration_s: float, pass_s: float, stall: tuple[float, float] | None = None) -> str:
    """Two CPUs copying 64 MiB per pass every `pass_s`; passes that end inside `stall` take 4 x longer."""
    lines = ["stream: setup cpus=2 bytes_per_cpu=67108864 duration_ms=%d" % (duration_s * 1000), "stream: running"]
    for cpu in (0, 1):
        t = 0.0
        while t < duration_s:
            d = pass_s * (4 if stall and stall[0] <= t < stall[1] else 1)
            t += d
            lines.append(f"stream: cpu={cpu} t_us={int(t * 1e6)} bytes={64 * MB} us={int(d * 1e6)}")
    return "\n".join(lines) + "\n"


def ftq_output(quanta: int, per_q: int, dip: tuple[int, int] | None = None) -> str:
    lines = [f"ftq: setup cpus=2 quantum_us=1000 quanta={quanta}", "ftq: running"]
    for cpu in (0, 1):
        counts = [per_q // 2 if dip and dip[0] <= q < dip[1] else per_q for q in range(quanta)]
        for first in range(0, quanta, 16):
            lines.append(f"ftq: cpu={cpu} q={first}: " + " ".join(map(str, counts[first:first + 16])))
    return "\n".join(lines) + "\n"


def record(name: str, out: str, resized: bool) -> dict:
    rec = {"candidate": name, "reclaim": name, "resized": resized, "exit_code": 0, "guest_output": out,
           "status_end": {"vcpu_cpu": [{"index": 0, "service": False, "cpu_s": 9.5}, {"index": 1, "service": False,
                                                                                       "cpu_s": 9.6},
                                       {"index": 2, "service": True, "cpu_s": 0.25}]}}
    if resized:
        rec["shrink"] = {"size": "2G", "start_s": 4.0, "end_s": 4.5, "elapsed_ms": 500.0}
        rec["grow"] = {"size": "8G", "start_s": 8.0, "end_s": 8.2, "elapsed_ms": 200.0}
    return rec


class Samples(unittest.TestCase):
    def test_binning_conserves_bytes(self):
        passes = samples.stream_passes(stream_output(10, 0.1))
        series = samples.stream_series(passes, 10, 0.5)
        total = sum(v * 0.5 * 1e9 for v in series)
        self.assertAlmostEqual(total, sum(p[2] for p in passes if p[1] <= 10), delta=64 * MB)
        # 2 CPUs x 64 MiB / 0.1 s
        self.assertAlmostEqual(series[3], 2 * 64 * MB / 0.1 / 1e9, places=6)

    def test_stall_shows_where_it_happened(self):
        series = samples.stream_series(samples.stream_passes(stream_output(10, 0.1, (4, 5))), 10, 0.5)
        self.assertLess(max(series[9:10]), 0.5 * series[2])
        self.assertAlmostEqual(series[15], series[2], places=3)

    def test_ftq_counts_sum_cpus(self):
        q, counts = samples.ftq_counts(ftq_output(100, 1000))
        self.assertEqual(q, 0.001)
        self.assertEqual(counts, [2000] * 100)
        self.assertEqual(samples.bin_counts(counts, q, 0.05), [2e6] * 2)

    def test_percentile(self):
        self.assertEqual(samples.percentile(list(range(1, 101)), 1), 1)
        self.assertEqual(samples.percentile(list(range(1, 101)), 50), 50)
        self.assertEqual(samples.percentile([], 1), 0.0)


class Summary(unittest.TestCase):
    def params(self, kind):
        p = bench.params(kind, True)
        p.update(duration_s=12, shrink_at_s=4, grow_at_s=8)
        return p

    def test_stream_against_baseline(self):
        p = self.params("stream")
        recs = [record("baseline", stream_output(12, 0.1), False),
                record("hyperalloc", stream_output(12, 0.1), True),
                record("balloon", stream_output(12, 0.1, (4, 6)), True),
                {"candidate": "virtio-mem", "reclaim": "virtio-mem", "resized": True, "error": "boom"}]
        rows = {r["candidate"]: r for r in bench.summarize("stream", recs, p)}
        self.assertAlmostEqual(rows["hyperalloc"]["mean_vs_baseline"], 1.0, places=3)
        self.assertLess(rows["balloon"]["p1_vs_baseline"], 0.5)
        self.assertGreater(rows["balloon"]["time_lost_s"], 1.0)
        self.assertAlmostEqual(rows["hyperalloc"]["time_lost_s"], 0.0, places=2)
        self.assertEqual(rows["hyperalloc"]["service_cpu_s"], 0.25)
        self.assertEqual(rows["virtio-mem"]["error"], "boom")
        # Against the same VM before the shrink: the stall lowers balloon's window, not hyperalloc's.
        self.assertAlmostEqual(rows["hyperalloc"]["window_vs_before"], 1.0, places=2)
        self.assertLess(rows["balloon"]["window_p1_vs_before"], 0.5)
        self.assertAlmostEqual(rows["baseline"]["window_vs_before"], 1.0, places=2)
        text = bench.table("stream", list(rows.values()))
        self.assertIn("virtio-mem    FAILED: boom", text)
        self.assertIn("hyperalloc", text)
        heads = {h["figure"]: h for h in bench.headlines("stream", {"rows": list(rows.values())})}
        own = heads["stream resize-window 1st percentile / same VM before the shrink, balloon"]
        self.assertLess(own["hvmm"], 0.5)
        self.assertIn("baseline's own: 1.000", own["note"])

    def test_a_shrink_that_stops_short_is_a_result(self):
        p = self.params("stream")
        rec = record("virtio-mem", stream_output(12, 0.1), True)
        rec["shrink"].update(reached=False, usable_bytes=5 << 29)
        rows = bench.summarize("stream", [record("baseline", stream_output(12, 0.1), False), rec], p)
        self.assertNotIn("error", rows[1])
        self.assertAlmostEqual(rows[1]["shrink_stopped_at_gib"], 2.5)
        self.assertIn("virtio-mem: the shrink to 2G stopped at 2.50 GiB usable", bench.table("stream", rows))

    def test_no_samples_is_a_failure(self):
        p = self.params("ftq")
        rows = bench.summarize("ftq", [record("baseline", "ftq: running\n", False)], p)
        self.assertIn("no ftq samples", rows[0]["error"])

    def test_plots_are_written(self):
        for kind, out in (("stream", lambda s: stream_output(12, 0.1, s)), ("ftq", lambda s: ftq_output(
                12000, 30000, None if s is None else (4000, 5000)))):
            p = self.params(kind)
            recs = [record("baseline", out(None), False), record("hyperalloc", out(None), True),
                    record("balloon", out((4, 5)), True)]
            rows = bench.summarize(kind, recs, p)
            summary = {"params": p, "rows": rows, "resizes": {r["candidate"]: {"shrink": r.get("shrink"),
                                                                               "grow": r.get("grow")} for r in recs}}
            with tempfile.TemporaryDirectory() as d:
                paths = plots.draw(pathlib.Path(d), summary)
                self.assertEqual(len(paths), 2)
                for path in paths:
                    self.assertGreater(path.stat().st_size, 10_000, path)


if __name__ == "__main__":
    unittest.main()
