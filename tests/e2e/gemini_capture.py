#!/usr/bin/env python3
"""A Gemini CLI command hook that appends its stdin payload, as one line, to the file named by argv[1].

Registered for every hook event by the tests and by the fixture captures (tests/fixtures/gemini/). It
prints nothing and exits 0, so Gemini carries on as if no hook ran. Parallel tool calls fire their
hooks at once: each payload is written with one write under an exclusive lock.
"""
import fcntl, json, sys

raw = sys.stdin.buffer.read().strip()
if b"\n" in raw:
    # keep one payload per line (Gemini sends compact JSON, so this is only a safeguard)
    raw = json.dumps(json.loads(raw), ensure_ascii=False, separators=(",", ":")).encode()
with open(sys.argv[1], "ab") as fh:
    fcntl.flock(fh, fcntl.LOCK_EX)
    fh.write(raw + b"\n")
