#!/usr/bin/env python3
"""Fails when src/ has an import cycle or an import that runs back up the layers.

Layers, lowest first; a module may import only its own layer and those below it:
  sys < model < metrics < store < usage < vcs < ingest < pipeline < export < backfill < cli < main
anyhow is for the commands only (`cli`, `main`); below them errors are types.
Files are read for `crate::a::b` paths; what `#[cfg(test)]` marks (a test module, a test helper) and
files of a `tests` module are left out: test code may build its data from any layer. The pipeline and
export take their inputs from `model`, never from `ingest` (the seam where payloads become events).
Every file-to-file import graph must also be free of cycles.
"""
import pathlib
import re
import sys

LAYERS = ["sys", "model", "metrics", "store", "usage", "vcs", "ingest", "pipeline", "export", "backfill", "cli", "main"]
# below in the layers, and still not to be imported: (importer, imported)
APART = {("pipeline", "ingest"), ("export", "ingest")}
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


def without_tests(text: str) -> str:
    """The text without the items `#[cfg(test)]` marks: each from the attribute to the end of its
    block (balanced braces, string and char literals and comments skipped) or its `;`."""
    out, i = [], 0
    while True:
        at = text.find("#[cfg(test)]", i)
        if at < 0:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:at])
        j, depth = at + len("#[cfg(test)]"), 0
        while j < len(text):
            c = text[j]
            if text.startswith("//", j):
                j = text.find("\n", j)
                j = len(text) if j < 0 else j
                continue
            if c == '"':
                j += 1
                while j < len(text) and text[j] != '"':
                    j += 2 if text[j] == "\\" else 1
            elif c == "'" and j + 2 < len(text) and (text[j + 2] == "'" or text[j + 1] == "\\"):
                j = text.find("'", j + 2)
            elif c == "{":
                depth += 1
            elif c == "}":
                depth -= 1
                if depth == 0:
                    j += 1
                    break
            elif c == ";" and depth == 0:
                j += 1
                break
            j += 1
        i = j


def main() -> int:
    problems = []
    graph: dict[pathlib.Path, set[pathlib.Path]] = {}
    for f in sorted(SRC.rglob("*.rs")):
        mod = module_of(f)
        if mod in (["lib"], ["testdata"], ["fuzz"]) or "tests" in mod:
            continue
        layer = mod[0]
        if layer not in LAYERS:
            problems.append(f"{f.relative_to(SRC)}: not in a known layer {LAYERS}")
            continue
        text = f.read_text()
        text = without_tests(text)
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
            if LAYERS.index(other) > LAYERS.index(layer) or (layer, other) in APART:
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
