#!/usr/bin/env python3
"""Fails when src/ has an import cycle or an import that runs back up the layers.

Layers, lowest first; a module may import only its own layer and those below it:
  model < metrics < store < usage < ingest < pipeline < export < backfill < cli < main
anyhow is for the commands only (`cli`, `main`); below them errors are types.
Files are read for `crate::a::b` paths (test modules, from `#[cfg(test)]` on, are left out: test code
may build its data from any layer). Every file-to-file import graph must also be free of cycles.
"""
import pathlib
import re
import sys

LAYERS = ["model", "metrics", "store", "usage", "ingest", "pipeline", "export", "backfill", "cli", "main"]
SRC = pathlib.Path(__file__).resolve().parent.parent / "src"


def module_of(path: pathlib.Path) -> list[str]:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "mod":
        parts.pop()
    return parts


def resolve(segments: list[str]) -> pathlib.Path | None:
    """The file a `crate::` path lands in: the longest prefix that names a file."""
    for n in range(len(segments), 0, -1):
        base = SRC.joinpath(*segments[:n])
        for f in (base.with_suffix(".rs"), base / "mod.rs"):
            if f.is_file():
                return f
    return None


def main() -> int:
    problems = []
    graph: dict[pathlib.Path, set[pathlib.Path]] = {}
    for f in sorted(SRC.rglob("*.rs")):
        mod = module_of(f)
        if mod in (["lib"], ["testdata"], ["fuzz"]):
            continue
        layer = mod[0]
        if layer not in LAYERS:
            problems.append(f"{f.relative_to(SRC)}: not in a known layer {LAYERS}")
            continue
        text = f.read_text()
        text = text.split("#[cfg(test)]", 1)[0]
        if layer not in ("cli", "main") and re.search(r"\banyhow\b", re.sub(r"//[^\n]*", "", text)):
            problems.append(f"{f.relative_to(SRC)}: anyhow outside cli (use a thiserror type)")
        text = re.sub(r"//[^\n]*", "", text)
        deps = graph.setdefault(f, set())
        for m in re.finditer(r"(?:crate|hooktel)::((?:\w+::)*\w+)", text):
            segments = m.group(1).split("::")
            target = resolve(segments)
            if target is None or target == f:
                continue
            deps.add(target)
            other = module_of(target)[0]
            if other not in LAYERS:
                continue
            if LAYERS.index(other) > LAYERS.index(layer):
                problems.append(f"{f.relative_to(SRC)} imports {target.relative_to(SRC)}: {layer} may not import {other}")
    # cycles between files
    state: dict[pathlib.Path, int] = {}
    stack: list[pathlib.Path] = []

    def visit(f: pathlib.Path) -> None:
        state[f] = 1
        stack.append(f)
        for d in sorted(graph.get(f, ())):
            if state.get(d) == 1:
                cycle = stack[stack.index(d):] + [d]
                problems.append("cycle: " + " -> ".join(str(c.relative_to(SRC)) for c in cycle))
            elif d not in state:
                visit(d)
        stack.pop()
        state[f] = 2

    for f in sorted(graph):
        if f not in state:
            visit(f)
    for p in problems:
        print(f"check-layers: {p}", file=sys.stderr)
    if problems:
        return 1
    print(f"check-layers: {len(graph)} files, no cycle, every import runs down the layers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
