"""Result directories: raw data + metadata (machine, kernel, versions, parameters) + plots."""
from __future__ import annotations

import csv
import datetime
import json
import os
import platform
import subprocess
from pathlib import Path


def metadata(hvmm: str, params: dict) -> dict:
    def run(*cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""
    cpu = ""
    try:
        cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "")
    except OSError:
        pass
    root = Path(__file__).resolve().parents[2]
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "host": {"kernel": platform.release(), "cpu": cpu, "cpus": os.cpu_count(),
                 "mem_bytes": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
                 "thp": Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text().strip()},
        "hvmm": {"path": hvmm, "git": run("git", "-C", str(root), "describe", "--always", "--dirty")},
        "params": params,
    }


def result_dir(bench: str, base: str = "results") -> Path:
    d = Path(base) / bench / datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    d.mkdir(parents=True, exist_ok=True)
    return d


def write_rss_csv(path: Path, samples) -> None:
    """RSS samples [(t_s, bytes)] as CSV with a header."""
    import csv
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t_s", "rss_bytes"])
        w.writerows(samples)


def write_json(path: Path, obj) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")


def write_results(d: Path, rows: list[dict], summary: dict, text: str) -> None:
    """The finished benchmark's files: runs.json/.csv (one row per run), summary.json, summary.txt;
    prints the table."""
    write_json(d / "runs.json", rows)
    keys = sorted({k for r in rows for k in r})
    with open(d / "runs.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    write_json(d / "summary.json", summary)
    (d / "summary.txt").write_text(text + "\n")
    print(text, flush=True)
