#!/usr/bin/env bash
# The whole test suite, from a fresh clone: installs what the tests need, then checks formatting,
# lints, and runs every test (unit, integration over the wire, end-to-end with the real Claude Code CLI).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
bash scripts/install-test-deps.sh
export HOOKTEL_CLAUDE_BIN=${HOOKTEL_CLAUDE_BIN:-$ROOT/target/test-deps/claude-code/node_modules/.bin/claude}
cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
