#!/usr/bin/env python3
"""ARCHITECTURE.md must not rot: every file or folder it names in backticks exists, and every
`Type::member` it names is defined somewhere in the sources.

  check_architecture_doc.py [ROOT]   exit 1 and list what is missing
"""
import pathlib
import re
import sys

PATH_LIKE = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]*)+$|^[A-Za-z0-9_\-]+\.(hpp|cpp|py|S|md|txt|sh)$")
MEMBER = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*::)+([A-Za-z_][A-Za-z0-9_]*)$")
SOURCES = ("*.hpp", "*.cpp", "*.S", "*.py")


def main(argv) -> int:
    root = pathlib.Path(argv[1]) if len(argv) > 1 else pathlib.Path(__file__).resolve().parents[2]
    doc = (root / "ARCHITECTURE.md").read_text()
    tokens = set(re.findall(r"`([^`\n]+)`", doc))
    source_text = "\n".join(
        f.read_text(errors="replace")
        for pattern in SOURCES for f in root.rglob(pattern)
        if not f.relative_to(root).as_posix().startswith(("build", ".git")))
    missing = []
    paths = members = 0
    for t in sorted(tokens):
        t = t.strip()
        if PATH_LIKE.match(t):
            paths += 1
            if not (root / t.rstrip("/")).exists():
                missing.append(f"path {t}")
        elif m := MEMBER.match(t):
            members += 1
            if not re.search(r"\b" + re.escape(m.group(1)) + r"\b", source_text):
                missing.append(f"name {t}")
    for m in missing:
        print(f"ARCHITECTURE.md names {m}, which does not exist")
    print(f"architecture doc: {paths} paths and {members} names checked, {len(missing)} missing")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
