#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need, then checks formatting,
# lints, and runs every test (unit, integration over the wire, end-to-end with the real Claude Code CLI).
# Ends with one line summing every test binary's results: "N passed, N failed".
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/install-test-deps.sh
export HOOKTEL_CLAUDE_BIN=${HOOKTEL_CLAUDE_BIN:-$ROOT/target/test-deps/claude-code/node_modules/.bin/claude}
export HOOKTEL_CODEX_BIN=${HOOKTEL_CODEX_BIN:-$ROOT/target/test-deps/codex/node_modules/.bin/codex}
export HOOKTEL_GEMINI_BIN=${HOOKTEL_GEMINI_BIN:-$ROOT/target/test-deps/gemini-cli/node_modules/.bin/gemini}
cargo fmt --check
# layers import only downwards, and no module imports one that imports it back
python3 scripts/check-layers.py
cargo clippy --all-targets --locked -- -D warnings
LOG=$(mktemp)
trap 'rm -f "$LOG"' EXIT
status=0
cargo test --locked 2>&1 | tee "$LOG" || status=$?
awk '/^test result:/ { p += $4; f += $6 } END { printf "%d passed, %d failed\n", p, f }' "$LOG"
exit "$status"
