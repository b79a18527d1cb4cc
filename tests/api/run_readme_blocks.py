#!/usr/bin/python3
"""Runs every fenced block of README.md whose info string is `sh runnable`, so that the README's
commands cannot rot: each block runs in bash -e, in a scratch directory where `build` is the build
under test and `examples`, `bench`, `api` are the repository's, with a hard timeout; its whole process
group is killed afterwards. A block fails the test when it exits non-zero or times out.

usage: run_readme_blocks.py --build BUILD_DIR [--readme README.md]   (SKIPPED without /dev/kvm)"""
import argparse
import os
import pathlib
import re
import signal
import subprocess
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
BLOCK = re.compile(r"^```sh runnable[ \t]*\n(.*?)^```[ \t]*$", re.S | re.M)


def blocks(text: str) -> list[tuple[int, str]]:
    """(line number, body) of every runnable block."""
    return [(text[:m.start()].count("\n") + 1, m.group(1)) for m in BLOCK.finditer(text)]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", required=True)
    ap.add_argument("--readme", default=str(ROOT / "README.md"))
    ap.add_argument("--timeout", type=float, default=90)
    args = ap.parse_args()
    found = blocks(pathlib.Path(args.readme).read_text())
    if not found:
        print("no runnable blocks found: the marker is ```sh runnable")
        return 1
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        print("SKIPPED: /dev/kvm not available")
        return 0
    failed = 0
    with tempfile.TemporaryDirectory(prefix="hvmm-readme-") as scratch:
        os.symlink(os.path.abspath(args.build), os.path.join(scratch, "build"))
        for d in ("examples", "bench", "api"):
            os.symlink(ROOT / d, os.path.join(scratch, d))
        for line, body in found:
            p = subprocess.Popen(["bash", "-e", "-c", body], cwd=scratch, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, start_new_session=True)
            try:
                out, _ = p.communicate(timeout=args.timeout)
                ok = p.returncode == 0
                why = f"exit status {p.returncode}"
            except subprocess.TimeoutExpired:
                out, ok, why = "", False, f"timed out after {args.timeout:.0f} s"
            finally:
                try:
                    os.killpg(p.pid, signal.SIGKILL)  # a VM the block left behind
                except ProcessLookupError:
                    pass
                p.wait()
            print(f"README.md:{line}: {'ok' if ok else 'FAILED (' + why + ')'}")
            if not ok:
                failed += 1
                print(body)
                print("output:\n" + (out or "")[-3000:])
    print(f"{len(found) - failed} of {len(found)} runnable blocks passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
