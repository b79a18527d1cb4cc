"""The index of `bench/run.py bench-plot all`: one Markdown file that links every benchmark's result
directory and plots and puts hvmm's headline ratios next to the reference's (each benchmark's
`headlines`, which cite where the reference's figures come from)."""
from __future__ import annotations

import importlib
import os
from pathlib import Path


def headlines(benchmark: str, summary: dict) -> list[dict]:
    """Rows {figure, hvmm, reference, note} of one benchmark's summary."""
    if benchmark in ("stream", "ftq"):
        return importlib.import_module("interference.bench").headlines(benchmark, summary)
    return importlib.import_module(f"{benchmark}.analysis").headlines(summary)


def _num(v) -> str:
    if v is None:
        return "–"
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"


def _link(index_dir: Path, target: Path) -> str:
    return os.path.relpath(Path(target).resolve(), Path(index_dir).resolve())


def table_warnings(table: Path) -> list[str]:
    """The lines of a benchmark's summary.txt that say its figures are to be doubted: WARNING lines
    and the items under FLAGS: (inflate), so that the index does not show a ratio without them."""
    if not table.exists():
        return []
    out, in_flags = [], False
    for line in table.read_text().splitlines():
        if line.startswith("WARNING"):
            out.append(line)
        elif line.startswith("FLAGS:"):
            in_flags = True
        elif in_flags and line.startswith("  "):
            out.append(line.strip())
        else:
            in_flags = False
    return out


def render(index_dir: Path, outcomes: list[dict], meta: dict) -> str:
    """outcomes: per benchmark {benchmark, dir, plots, summary, failed, error, wall_s}; meta: command,
    date, revision, host, total wall time."""
    bad = [o["benchmark"] for o in outcomes if o.get("error") or o.get("failed")]
    lines = [f"# hvmm benchmarks: `{meta.get('command', 'bench/run.py bench-plot all')}`", "",
             f"- date: {meta.get('date', '?')}; revision: {meta.get('revision', '?')}; host: {meta.get('host', '?')}",
             f"- wall time: {meta['wall_s'] / 60:.1f} min" if meta.get("wall_s") is not None else "- wall time: ?",
             f"- status: {'FAILED: ' + ', '.join(bad) if bad else 'every candidate ran'}", "",
             "| benchmark | status | wall time | results |", "|---|---|---|---|"]
    for o in outcomes:
        status = "error" if o.get("error") else ("FAILED: " + ", ".join(o["failed"]) if o.get("failed") else "ok")
        res = f"[{o['dir']}]({_link(index_dir, o['dir'])})" if o.get("dir") else "–"
        wall = f"{o['wall_s'] / 60:.1f} min" if o.get("wall_s") is not None else "–"
        lines.append(f"| {o['benchmark']} | {status} | {wall} | {res} |")
    lines += ["", "Reference figures are the HyperAlloc paper's (other hardware, other scales): compare ratios, "
              "not absolute values. – means no figure.", ""]
    for o in outcomes:
        lines += [f"## {o['benchmark']}", ""]
        if o.get("error"):
            lines += [f"**did not finish**: {o['error']}", ""]
        if o.get("failed"):
            lines += [f"**failed candidates**: {', '.join(o['failed'])}", ""]
        rows = []
        if o.get("summary") is not None:
            try:
                rows = headlines(o["benchmark"], o["summary"])
            except Exception as e:  # noqa: BLE001 - a summary without a figure must not hide the others
                lines += [f"headlines unavailable: {type(e).__name__}: {e}", ""]
        if rows:
            lines += ["| figure | hvmm | reference | note |", "|---|---|---|---|"]
            lines += [f"| {r['figure']} | {_num(r['hvmm'])} | {_num(r['reference'])} | {r.get('note', '')} |" for r in rows]
            lines.append("")
        if o.get("dir"):
            table = Path(o["dir"]) / "summary.txt"
            lines += [f"Table: [{_link(index_dir, table)}]({_link(index_dir, table)})", ""]
            warnings = table_warnings(table)
            if warnings:
                lines += ["Warnings and flags from the table:", ""] + [f"- {w}" for w in warnings] + [""]
        for p in o.get("plots") or []:
            rel = _link(index_dir, p)
            lines += [f"![{Path(p).name}]({rel})", ""]
    return "\n".join(lines)


def write(index_dir: Path, outcomes: list[dict], meta: dict) -> Path:
    path = Path(index_dir) / "index.md"
    path.write_text(render(index_dir, outcomes, meta) + "\n")
    return path
