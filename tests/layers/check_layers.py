#!/usr/bin/env python3
"""The layer map of hvmm (ARCHITECTURE.md, "Layers"), checked on the sources.

Every `#include "…"` of a file in the repository must name a folder its layer may use. The build
enforces the same map through include roots (CMakeLists.txt, hvmm_layer); this check also covers
files no single target compiles together, names the offending line, and proves the map has no
cycle.

  check_layers.py [ROOT]       check the tree at ROOT (default: the repository); exit 1 on a violation
  check_layers.py --self-test  prove the check catches a violation (devices/ including reclaim/)
"""
import pathlib
import re
import shutil
import sys
import tempfile

# layer -> the folders its files may include (its own first). The longest matching prefix of a
# file's path picks its layer; an include is allowed when the longest allowed prefix matches it.
LAYERS = {
    "guest-alloc": ["guest-alloc"],
    "abi": ["abi", "guest-alloc"],
    "base": ["base"],
    "memory": ["memory", "base", "abi"],
    "devices": ["devices", "memory", "base", "abi"],
    "reclaim": ["reclaim", "memory", "base", "abi", "guest-alloc"],
    "vmm/boot": ["vmm/boot", "memory", "base", "abi"],
    "vmm/api": ["vmm/api", "reclaim", "devices", "memory", "base", "abi", "guest-alloc"],
    "vmm": ["vmm", "devices", "reclaim", "memory", "base", "abi", "guest-alloc"],
    "guest": ["guest", "abi", "guest-alloc"],
    "bench": ["bench", "memory", "base", "abi", "guest-alloc"],
    "tests": ["tests", "vmm", "devices", "reclaim", "memory", "base", "abi", "guest-alloc"],
}
SOURCE_SUFFIXES = {".cpp", ".hpp", ".h", ".c", ".S"}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def layer_of(path: str):
    best = None
    for layer in LAYERS:
        if (path == layer or path.startswith(layer + "/")) and (best is None or len(layer) > len(best)):
            best = layer
    return best


def allowed(layer: str, include: str) -> bool:
    return any(include.startswith(folder + "/") for folder in LAYERS[layer])


def find_cycle():
    """A cycle among the layers (as a list), or None. A layer using a sub-layer of its own
    (vmm -> vmm/api) is containment, not a dependency."""
    def deps(layer):
        out = set()
        for folder in LAYERS[layer]:
            target = layer_of(folder)
            if target and target != layer and not target.startswith(layer + "/"):
                out.add(target)
        return out

    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for d in sorted(deps(n)):
            if state.get(d) == 1:
                return stack[stack.index(d):] + [d]
            if d not in state:
                found = visit(d)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in LAYERS:
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def check(root: pathlib.Path) -> list:
    problems = []
    cycle = find_cycle()
    if cycle:
        problems.append("the layer map has a cycle: " + " -> ".join(cycle))
    for f in sorted(root.rglob("*")):
        rel = f.relative_to(root).as_posix()
        if f.suffix not in SOURCE_SUFFIXES or not f.is_file() or rel.startswith(("build", ".git")):
            continue
        layer = layer_of(rel)
        if layer is None:
            problems.append(f"{rel}: not in any layer (add its folder to LAYERS and to ARCHITECTURE.md)")
            continue
        for n, line in enumerate(f.read_text(errors="replace").splitlines(), 1):
            m = INCLUDE.match(line)
            if not m or "/" not in m.group(1):
                continue  # "file.hpp": a neighbour in the same folder
            if not allowed(layer, m.group(1)):
                problems.append(f"{rel}:{n}: includes \"{m.group(1)}\", but {layer}/ may use only "
                                + ", ".join(f + "/" for f in LAYERS[layer]))
    return problems


def self_test() -> int:
    repo = pathlib.Path(__file__).resolve().parents[2]
    with tempfile.TemporaryDirectory() as tmp:
        tree = pathlib.Path(tmp)
        shutil.copytree(repo / "devices", tree / "devices")
        shutil.copytree(repo / "reclaim", tree / "reclaim")
        for d in ("abi", "base", "memory", "guest-alloc"):
            shutil.copytree(repo / d, tree / d)
        if check(tree):
            print("self-test: the clean copy already fails:", *check(tree), sep="\n  ")
            return 1
        serial = tree / "devices" / "serial.cpp"
        serial.write_text('#include "reclaim/zone_state.hpp"\n' + serial.read_text())
        problems = check(tree)
        if not any(p.startswith("devices/serial.cpp:1:") and "reclaim/zone_state.hpp" in p for p in problems):
            print("self-test: devices/serial.cpp including reclaim/ was not reported")
            return 1
    print("self-test: a devices/ file that includes reclaim/ is reported")
    return 0


def main(argv) -> int:
    if argv[1:] == ["--self-test"]:
        return self_test()
    root = pathlib.Path(argv[1]) if len(argv) > 1 else pathlib.Path(__file__).resolve().parents[2]
    problems = check(root)
    for p in problems:
        print(p)
    print(f"layers: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
