#!/usr/bin/env bash
# Install what the test suite needs beyond cargo: the Claude Code CLI, OpenAI's Codex CLI and Google's
# Gemini CLI (pinned, from npm) for the end-to-end tests, python3 for the mock model APIs (Messages,
# Responses, Gemini), Debian's `tmux` (pane teammates of an agent team), `git` (real repositories for the
# checkout tests) and `prometheus` package (prometheus and promtool: the /metrics exposition, the alert
# rules and their unit tests, the dashboards' queries against a real server), and in a Python venv the
# offline schema validators of the deployment files (kubernetes-validate for deploy/kubernetes,
# check-jsonschema's bundled compose-spec schema for deploy/docker-compose.yml), and in a venv of its own
# Arize Phoenix, the LLM-tracing backend the traces are read back from (installed with uv: about 10 s
# instead of pip's 95). Idempotent; safe to run again.
#   env: CLAUDE_CODE_VERSION, CODEX_VERSION, GEMINI_VERSION (defaults below), HOOKTEL_TEST_DEPS (default:
#   target/test-deps)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEPS=${HOOKTEL_TEST_DEPS:-$ROOT/target/test-deps}
VERSION=${CLAUDE_CODE_VERSION:-2.1.332}
CLAUDE_DIR="$DEPS/claude-code"
CLAUDE="$CLAUDE_DIR/node_modules/.bin/claude"
CODEX_VERSION=${CODEX_VERSION:-0.171.0}
CODEX_DIR="$DEPS/codex"
CODEX="$CODEX_DIR/node_modules/.bin/codex"
GEMINI_VERSION=${GEMINI_VERSION:-0.61.0}
GEMINI_DIR="$DEPS/gemini-cli"
GEMINI="$GEMINI_DIR/node_modules/.bin/gemini"
VENV="$DEPS/py-venv"
PY_TOOLS=(kubernetes-validate==1.37.0 check-jsonschema==0.39.0)
PHOENIX_VENV="$DEPS/phoenix-venv"
PHOENIX=arize-phoenix==20.26.1
UV=uv==0.13.9

need_apt=()
command -v python3 >/dev/null || need_apt+=(python3)
command -v npm >/dev/null || need_apt+=(npm)
command -v promtool >/dev/null && command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v tmux >/dev/null || need_apt+=(tmux)
# tests/it/vcs.rs makes real repositories and linked worktrees with it
command -v git >/dev/null || need_apt+=(git)
# Debian's python3 has no ensurepip (so no `python3 -m venv`) without python3-venv
python3 -c 'import ensurepip' 2>/dev/null || need_apt+=(python3-venv)
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
if ! "$CODEX" --version 2>/dev/null | grep -q "$CODEX_VERSION"; then
  mkdir -p "$CODEX_DIR"
  [ -f "$CODEX_DIR/package.json" ] || echo '{"private": true}' >"$CODEX_DIR/package.json"
  (cd "$CODEX_DIR" && npm install --no-audit --no-fund --save-exact --loglevel=error "@openai/codex@$CODEX_VERSION")
fi
if ! "$GEMINI" --version 2>/dev/null | grep -qxF "$GEMINI_VERSION"; then
  mkdir -p "$GEMINI_DIR"
  [ -f "$GEMINI_DIR/package.json" ] || echo '{"private": true}' >"$GEMINI_DIR/package.json"
  (cd "$GEMINI_DIR" && npm install --no-audit --no-fund --save-exact --loglevel=error "@google/gemini-cli@$GEMINI_VERSION")
fi
py_tools_ok() {
  local have
  have=$("$VENV/bin/pip" freeze 2>/dev/null) || return 1
  for t in "${PY_TOOLS[@]}"; do grep -qixF "$t" <<<"$have" || return 1; done
}
if ! py_tools_ok; then
  # a venv whose interpreter is gone (python3 upgraded or removed), or without its pip (its making was
  # interrupted), is made again
  "$VENV/bin/pip" --version >/dev/null 2>&1 || { rm -rf "$VENV" && python3 -m venv "$VENV"; }
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "${PY_TOOLS[@]}"
fi
if ! "$PHOENIX_VENV/bin/pip" freeze 2>/dev/null | grep -qixF "$PHOENIX"; then
  "$PHOENIX_VENV/bin/pip" --version >/dev/null 2>&1 || { rm -rf "$PHOENIX_VENV" && python3 -m venv "$PHOENIX_VENV"; }
  "$PHOENIX_VENV/bin/pip" install --quiet --disable-pip-version-check "$UV"
  "$PHOENIX_VENV/bin/uv" pip install --quiet --python "$PHOENIX_VENV/bin/python" "$PHOENIX"
fi
echo "claude: $("$CLAUDE" --version) at $CLAUDE"
echo "codex: $("$CODEX" --version) at $CODEX"
echo "gemini: $("$GEMINI" --version) at $GEMINI"
echo "promtool: $(promtool --version 2>&1 | head -n 1)"
echo "validators: $("$VENV/bin/kubernetes-validate" --version), check-jsonschema $("$VENV/bin/check-jsonschema" --version | awk '{print $NF}') in $VENV"
echo "phoenix: $("$PHOENIX_VENV/bin/pip" freeze 2>/dev/null | grep -i "^arize-phoenix==") in $PHOENIX_VENV"
