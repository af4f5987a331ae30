#!/usr/bin/env bash
# Install what the test suite needs beyond cargo: the Claude Code CLI (pinned, from npm) for the
# end-to-end tests, python3 for the mock Messages API, and promtool (Debian's `prometheus` package)
# to check the sidecar's /metrics exposition. Idempotent; safe to run again.
#   env: CLAUDE_CODE_VERSION (default below), HOOKTEL_TEST_DEPS (default: target/test-deps)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPS=${HOOKTEL_TEST_DEPS:-$ROOT/target/test-deps}
VERSION=${CLAUDE_CODE_VERSION:-2.1.329}
CLAUDE_DIR="$DEPS/claude-code"
CLAUDE="$CLAUDE_DIR/node_modules/.bin/claude"

need_apt=()
command -v python3 >/dev/null || need_apt+=(python3)
command -v npm >/dev/null || need_apt+=(npm)
command -v promtool >/dev/null || need_apt+=(prometheus)
if [ ${#need_apt[@]} -gt 0 ]; then
  apt-get update -qq && apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! "$CLAUDE" --version 2>/dev/null | grep -q "$VERSION"; then
  mkdir -p "$CLAUDE_DIR"
  # a package.json here stops npm from walking up into a parent project
  [ -f "$CLAUDE_DIR/package.json" ] || echo '{"private": true}' >"$CLAUDE_DIR/package.json"
  (cd "$CLAUDE_DIR" && npm install --no-audit --no-fund --save-exact --loglevel=error "@anthropic-ai/claude-code@$VERSION")
  # the package links its native binary in postinstall; run it if npm skipped scripts
  "$CLAUDE" --version >/dev/null 2>&1 || (cd "$CLAUDE_DIR/node_modules/@anthropic-ai/claude-code" && node install.cjs)
fi
echo "claude: $("$CLAUDE" --version) at $CLAUDE"
echo "promtool: $(promtool --version 2>&1 | head -n 1)"
