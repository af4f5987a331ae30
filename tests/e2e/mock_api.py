#!/usr/bin/env python3
"""Scripted mock of the Anthropic Messages API (stdlib only), for hooktel's end-to-end test.

Adapted from the offline harness: every scripted tool exists in Claude Code 2.1.329's `-p` tool set
(TaskCreate/TaskUpdate are not offered there), except one deliberately unknown tool, and the subagent
also runs a failing command. Run one instance per work directory: file paths point into --workdir.

Usage: mock_api.py --port 0 --workdir DIR --log requests.jsonl [--port-file F] [--latency-ms N]

--latency-ms: each message reply waits N ms first, as a real model takes time to answer.

Binds 127.0.0.1 only. Every request is appended to --log as one JSON line; a message reply also logs
what was served ("reply": message id, model, usage, and whether it answered a /compact summary request),
so the test can tell which API calls no transcript line records.
POST /v1/messages answers from a stateless script keyed on how many tool_use
turns the conversation already contains (so retries/resumes are harmless):

  main agent : Bash `echo hello` -> Bash failing (exit 1) -> Write file -> Read file
               -> [Read file + Bash cd] (parallel) -> Edit file
               -> UNKNOWN_TOOL (never runs: the CLI answers "No such tool available", no hook fires)
               -> Agent subagent -> text
  subagent   : (first user msg contains SUBAGENT_MARKER) Bash -> Bash failing (exit 3) -> final text
  side calls : (no tools: titles, summaries, ...) short text
  /compact   : (last user msg says "Respond with TEXT ONLY") <analysis>+<summary> text
  "[scenario:api-error]" in the prompt: HTTP 400 invalid_request_error
  "[scenario:retry]" in the prompt: HTTP 529 overloaded_error the first time a request is seen, then a
               short text answer (Claude Code retries: an api_error event, then attempt 2)
  "[scenario:money]" in the prompt: the MCP tool `mcp__files__read` (tests/e2e/mcp_files.py, when the
               CLI offers it; a text saying so when it does not) -> Bash `gh pr create ...` -> text

Both "stream": true (SSE) and plain JSON responses are supported.
"""
import argparse, json, os, secrets, string, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SUBAGENT_MARKER = "SUBAGENT-TASK-7f3a"
UNKNOWN_TOOL = "HooktelNoSuchTool"
B62 = string.ascii_letters + string.digits
LOCK = threading.Lock()
PREV_TOTAL = {}  # conversation key -> prompt tokens of previous turn (fake cache)
OVERLOADED_ONCE = set()  # retry scenario: request bodies already answered with 529


def rid(prefix, n=24):
    return prefix + "".join(secrets.choice(B62) for _ in range(n))


def text_of(content):
    if isinstance(content, str):
        return content
    return " ".join(b.get("text", "") for b in content if isinstance(b, dict))


def tool_turns(messages):
    return sum(1 for m in messages if m.get("role") == "assistant" and isinstance(m.get("content"), list)
               and any(b.get("type") == "tool_use" for b in m["content"]))


def scripts(tools, workdir):
    """Scripted model turns per agent; turn N is answered after N tool_use turns."""
    f = os.path.join(workdir, "note.txt")
    agent_tool = "Agent" if "Agent" in tools else "Task"
    bash = lambda cmd, desc: {"type": "tool_use", "name": "Bash", "input": {"command": cmd, "description": desc}}
    return {
        "main": [
            [{"type": "text", "text": "I'll start by running echo."}, bash("echo hello", "Print hello")],
            [bash("echo failing >&2; exit 1", "A command that fails")],
            [{"type": "tool_use", "name": "Write", "input": {"file_path": f, "content": "hello from the mock\n"}}],
            [{"type": "tool_use", "name": "Read", "input": {"file_path": f}}],
            [{"type": "tool_use", "name": "Read", "input": {"file_path": f}},
             bash("mkdir -p sub && cd sub && pwd", "Change directory")],  # two tool_uses in one turn
            [{"type": "tool_use", "name": "Edit", "input": {"file_path": f, "old_string": "hello from the mock",
                                                            "new_string": "hello, edited"}}],
            [{"type": "tool_use", "name": UNKNOWN_TOOL, "input": {}}],
            [{"type": "tool_use", "name": agent_tool, "input": {
                "description": "Run subagent echo", "subagent_type": "general-purpose",
                "prompt": SUBAGENT_MARKER + ": run `echo from-subagent` and report."}}],
            [{"type": "text", "text": "All done: echoed, saw a failure, wrote, read and edited note.txt, ran a subagent."}],
        ],
        "sub": [
            [{"type": "text", "text": "Subagent: running a command."}, bash("echo from-subagent", "Echo from subagent")],
            [bash("echo subagent-failing >&2; exit 3", "A subagent command that fails")],
            [{"type": "text", "text": "Subagent finished: printed from-subagent."}],
        ],
    }


MCP_TOOL = "mcp__files__read"


def money_script(tools, workdir):
    """Where the money goes: an MCP tool call, then a pull request opened with `gh`."""
    if MCP_TOOL not in tools:
        return [[{"type": "text", "text": f"mock: {MCP_TOOL} was not offered; tools: {sorted(tools)}"}]]
    gh = "gh pr create --title 'ABC-123: fix the widget' --body 'Fixes ABC-123.'"
    return [
        [{"type": "tool_use", "name": MCP_TOOL, "input": {"path": os.path.join(workdir, "README.md")}}],
        [{"type": "tool_use", "name": "Bash", "input": {"command": gh, "description": "Open the pull request"}}],
        [{"type": "text", "text": "Read the README over MCP and opened the pull request."}],
    ]


def is_compact(msgs):
    return bool(msgs) and "Respond with TEXT ONLY" in text_of(msgs[-1]["content"])


def plan(body, workdir):
    """Return (conversation_key, content blocks, stop_reason) or (key, None, error) for an API error."""
    msgs = body.get("messages", [])
    tools = {t.get("name") for t in body.get("tools") or []}
    first_user = text_of(msgs[0]["content"]) if msgs else ""
    if not tools:  # side requests (titles, summaries, ...)
        return "side", [{"type": "text", "text": "Mock side reply"}], "end_turn"
    if "[scenario:api-error]" in first_user:  # non-retryable 400 -> StopFailure
        return "main", None, "mock: scripted invalid_request_error"
    if is_compact(msgs):  # /compact summary request
        return "main", [{"type": "text", "text": "<analysis>mock analysis</analysis>\n<summary>Mock summary: "
                         "ran echo, a failing command, wrote/read/edited note.txt and a subagent.</summary>"}], "end_turn"
    if "[scenario:money]" in first_user:
        return scripted_turn("main", money_script(tools, workdir), msgs)
    key = "sub" if SUBAGENT_MARKER in first_user else "main"
    return scripted_turn(key, scripts(tools, workdir)[key], msgs)


def scripted_turn(key, script, msgs):
    """The script's turn for a conversation with this many tool_use turns (its last one past the end),
    each tool_use with a fresh id: (key, blocks, stop_reason)."""
    blocks = [dict(b) for b in script[min(tool_turns(msgs), len(script) - 1)]]
    for b in blocks:
        if b["type"] == "tool_use":
            b["id"] = rid("toolu_01")
    stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
    return key, blocks, stop


def usage_for(key, body, blocks):
    total = max(20, len(json.dumps([body.get("system"), body.get("tools"), body.get("messages")])) // 4)
    with LOCK:
        prev = PREV_TOTAL.get(key, 0) if key != "side" else 0
        PREV_TOTAL[key] = total
    cached = prev if prev < total else 0  # prefix of the previous turn is a cache hit
    new = total - cached
    inp = min(new, 3 + new % 9)  # a few uncached tokens after the last cache breakpoint
    return {"input_tokens": inp, "cache_creation_input_tokens": new - inp, "cache_read_input_tokens": cached,
            "output_tokens": max(1, len(json.dumps(blocks)) // 4), "service_tier": "standard"}


def sse(events):
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


def stream_events(msg):
    usage = msg["usage"]
    start = dict(msg, content=[], stop_reason=None, usage=dict(usage, output_tokens=1))
    ev = [{"type": "message_start", "message": start}, {"type": "ping"}]
    for i, b in enumerate(msg["content"]):
        if b["type"] == "text":
            ev.append({"type": "content_block_start", "index": i, "content_block": {"type": "text", "text": ""}})
            t = b["text"]
            for j in range(0, len(t), 16):
                ev.append({"type": "content_block_delta", "index": i, "delta": {"type": "text_delta", "text": t[j:j + 16]}})
        else:
            ev.append({"type": "content_block_start", "index": i,
                       "content_block": {"type": "tool_use", "id": b["id"], "name": b["name"], "input": {}}})
            js = json.dumps(b["input"])
            for j in range(0, len(js), 20):
                ev.append({"type": "content_block_delta", "index": i, "delta": {"type": "input_json_delta", "partial_json": js[j:j + 20]}})
        ev.append({"type": "content_block_stop", "index": i})
    ev.append({"type": "message_delta", "delta": {"stop_reason": msg["stop_reason"], "stop_sequence": None}, "usage": usage})
    ev.append({"type": "message_stop"})
    return ev


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _log(self, body, raw, reply=None):
        rec = {"ts": time.time(), "method": self.command, "path": self.path,
               "headers": dict(self.headers), "body": body if body is not None else raw}
        if reply is not None:
            rec["reply"] = reply
        with LOCK, open(self.server.logfile, "a") as fh:
            fh.write(json.dumps(rec) + "\n")

    def _send(self, code, payload, ctype="application/json", extra=None):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", rid("req_011"))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _read(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n).decode("utf-8", "replace") if n else ""
        try:
            return (json.loads(raw) if raw else None), raw
        except ValueError:
            return None, raw

    def do_HEAD(self):
        self._log(None, "")
        self._send(200, b"")

    def do_GET(self):
        self._log(None, "")
        path = self.path.split("?")[0]
        if path.rstrip("/") == "/v1/models" or path.startswith("/v1/models/"):
            m = {"type": "model", "id": "claude-sonnet-4-5-20250929", "display_name": "Claude Sonnet 4.5",
                 "created_at": "2025-09-29T00:00:00Z"}
            return self._send(200, m if path.startswith("/v1/models/") else
                              {"data": [m], "has_more": False, "first_id": m["id"], "last_id": m["id"]})
        self._send(404, {"type": "error", "error": {"type": "not_found_error", "message": "mock: " + path}})

    def do_POST(self):
        body, raw = self._read()
        path = self.path.split("?")[0]
        if path == "/v1/messages/count_tokens":
            self._log(body, raw)
            return self._send(200, {"input_tokens": max(1, len(raw) // 4)})
        if path != "/v1/messages" or not isinstance(body, dict):
            self._log(body, raw)
            return self._send(404, {"type": "error", "error": {"type": "not_found_error", "message": "mock: " + path}})
        if "[scenario:retry]" in text_of((body.get("messages") or [{}])[0].get("content", "")) and body.get("tools"):
            seen = json.dumps(body.get("messages"), sort_keys=True)
            with LOCK:
                first = seen not in OVERLOADED_ONCE
                OVERLOADED_ONCE.add(seen)
            if first:
                self._log(body, raw)
                return self._send(529, {"type": "error", "error": {"type": "overloaded_error",
                                                                   "message": "mock: scripted overload"}})
            blocks, stop, key = [{"type": "text", "text": "Answered on the second try."}], "end_turn", "retry"
        else:
            key, blocks, stop = plan(body, self.server.workdir)
        if blocks is None:
            self._log(body, raw)
            return self._send(400, {"type": "error", "error": {"type": "invalid_request_error", "message": stop}})
        time.sleep(self.server.latency)
        msg = {"id": rid("msg_01"), "type": "message", "role": "assistant", "model": body.get("model", "mock"),
               "content": blocks, "stop_reason": stop, "stop_sequence": None,
               "usage": usage_for(key, body, blocks)}
        self._log(body, raw, {"id": msg["id"], "model": msg["model"], "usage": msg["usage"],
                              "compact": is_compact(body.get("messages", []))})
        if body.get("stream"):
            self._send(200, sse(stream_events(msg)), "text/event-stream", {"Cache-Control": "no-cache"})
        else:
            self._send(200, msg)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--log", required=True)
    ap.add_argument("--port-file")
    ap.add_argument("--latency-ms", type=int, default=0)
    a = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    srv.workdir, srv.logfile = os.path.abspath(a.workdir), a.log
    srv.latency = a.latency_ms / 1000
    port = srv.server_address[1]
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as fh:
            fh.write(str(port))
        os.replace(a.port_file + ".tmp", a.port_file)
    print(f"mock listening on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
