#!/usr/bin/env python3
"""Scripted mock of the Anthropic Messages API for an agent team (stdlib only), for hooktel's team tests:
a lead that creates a task, spawns a teammate `worker` and messages it; the teammate (its first user
message holds TEAM_MARKER) claims the task, runs `echo from-teammate`, completes the task and messages
the lead. Adapted from the offline harness's team probe.

Usage: mock_teams.py --port 0 --workdir DIR --log requests.jsonl [--port-file F]

Binds 127.0.0.1 only. Every request is appended to --log as one JSON line. POST /v1/messages answers
from a stateless script keyed on who asks (lead or teammate) and how many tool_use turns the
conversation already holds; requests without tools (titles, summaries) get a short text.

Both "stream": true (SSE) and plain JSON responses are supported.
"""
import argparse, json, os, secrets, string, sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SUBAGENT_MARKER = "SUBAGENT-TASK-7f3a"
B62 = string.ascii_letters + string.digits
LOCK = threading.Lock()
PREV_TOTAL = {}  # conversation key -> prompt tokens of previous turn (fake cache)


def rid(prefix, n=24):
    return prefix + "".join(secrets.choice(B62) for _ in range(n))


def text_of(content):
    if isinstance(content, str):
        return content
    return " ".join(b.get("text", "") for b in content if isinstance(b, dict))


def tool_turns(messages):
    return sum(1 for m in messages if m.get("role") == "assistant" and isinstance(m.get("content"), list)
               and any(b.get("type") == "tool_use" for b in m["content"]))


TEAM_MARKER = "TEAMMATE-TASK-9c1e"
SCENARIO = os.environ.get("MOCK_SCENARIO", "team")


def scripts(tools, workdir):
    """Scripted model turns per agent; turn N is answered after N tool_use turns."""
    bash = lambda cmd, desc: {"type": "tool_use", "name": "Bash", "input": {"command": cmd, "description": desc}}
    tu = lambda name, inp: {"type": "tool_use", "name": name, "input": inp}
    return {
        "lead": [
            [{"type": "text", "text": "Loading team tools."}, tu("ToolSearch", {"query": "select:SendMessage,TaskCreate,TaskUpdate,TaskList", "max_results": 5})],
            [tu("TaskCreate", {"subject": "Echo check", "description": "Teammate runs echo", "activeForm": "Checking echo"})],
            [tu("Agent", {"description": "Teammate worker", "subagent_type": "general-purpose", "name": "worker",
                          "prompt": TEAM_MARKER + ": claim task 1, run `echo from-teammate`, complete it, message the lead."})],
            [tu("SendMessage", {"to": "worker", "message": "Hello worker, lead here.", "summary": "greeting"})],
            [{"type": "text", "text": "Lead: team started; waiting for the worker."}],
        ],
        "mate": [
            [{"type": "text", "text": "Teammate: loading tools."}, tu("ToolSearch", {"query": "select:SendMessage,TaskUpdate,TaskList", "max_results": 5})],
            [tu("TaskUpdate", {"taskId": "1", "status": "in_progress", "owner": "worker"})],
            [bash("echo from-teammate", "Echo from teammate")],
            [tu("TaskUpdate", {"taskId": "1", "status": "completed"})],
            [tu("SendMessage", {"to": "team-lead", "message": "Task 1 done: printed from-teammate.", "summary": "task 1 done"})],
            [{"type": "text", "text": "Teammate finished."}],
        ],
    }


def is_mate(msgs):
    for m in msgs:
        if m.get("role") == "assistant":
            return False
        if TEAM_MARKER in text_of(m.get("content", "")) or TEAM_MARKER in json.dumps(m.get("content", "")):
            return True
    return False


def plan(body, workdir):
    """Return (conversation_key, content blocks, stop_reason) or (key, None, error) for an API error."""
    msgs = body.get("messages", [])
    tools = {t.get("name") for t in body.get("tools") or []}
    if not tools:  # side requests (titles, summaries, ...)
        return "side", [{"type": "text", "text": "Mock side reply"}], "end_turn"
    key = "mate" if is_mate(msgs) else "lead"
    script = scripts(tools, workdir)[key]
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

    def _log(self, body, raw):
        rec = {"ts": time.time(), "method": self.command, "path": self.path,
               "headers": dict(self.headers), "body": body if body is not None else raw}
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
        self._log(body, raw)
        path = self.path.split("?")[0]
        if path == "/v1/messages/count_tokens":
            return self._send(200, {"input_tokens": max(1, len(raw) // 4)})
        if path != "/v1/messages" or not isinstance(body, dict):
            return self._send(404, {"type": "error", "error": {"type": "not_found_error", "message": "mock: " + path}})
        key, blocks, stop = plan(body, self.server.workdir)
        if blocks is None:
            return self._send(400, {"type": "error", "error": {"type": "invalid_request_error", "message": stop}})
        msg = {"id": rid("msg_01"), "type": "message", "role": "assistant", "model": body.get("model", "mock"),
               "content": blocks, "stop_reason": stop, "stop_sequence": None,
               "usage": usage_for(key, body, blocks)}
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
    a = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    srv.workdir, srv.logfile = os.path.abspath(a.workdir), a.log
    port = srv.server_address[1]
    if a.port_file:
        with open(a.port_file + ".tmp", "w") as fh:
            fh.write(str(port))
        os.replace(a.port_file + ".tmp", a.port_file)
    print(f"mock listening on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
