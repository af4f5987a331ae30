#!/usr/bin/env python3
"""Scripted mock of the OpenAI Responses API (stdlib only), for hooktel's Codex CLI tests.

Usage: mock_responses.py --port 0 --log requests.jsonl [--port-file F]

Binds 127.0.0.1 only. POST .../responses answers with SSE (`response.created`, the output items,
`response.completed` with usage), from a stateless script keyed on the prompt's turn marker and on how
many tool outputs the conversation holds since its last user message:

  first turn ("[turn:1]" or no marker): two exec_command calls in one response (`echo one`,
      `echo two`: parallel) -> a failing command (`echo failing >&2; exit 1`) -> text
  next turn ("[turn:2]", e.g. a resumed session): `echo resumed` -> text
  a subagent ("[turn:sub]"): `spawn_agent` with the task "[turn:child] ..." -> `wait_agent` on the
      agent id its output names -> text; the subagent, given "[turn:child]": `echo child` -> text

Each response's usage is distinct and logged with its response id and script ("reply"), so a test can
add up what was served: input_tokens = 1000 + 10 * n (cached 400 of it), output_tokens = 20 + n (reasoning 5),
n counting the mock's responses from 1. Every request is appended to --log as one JSON line.
"""
import json

from mock_http import LOCK, JsonHandler, serve

COUNT = {"n": 0}
SCRIPTS = {
    "1": [["echo one", "echo two"], ["echo failing >&2; exit 1"], "Turn one done: one, two, and a failure."],
    "2": [["echo resumed"], "Turn two done: resumed."],
    "child": [["echo child"], "Child done."],
}
# Codex's subagent tools are in a namespace of their own
MULTI_AGENT = "multi_agent_v1"


def subagent_step(items, outputs):
    """The parent's step of "[turn:sub]": spawn, then wait on the agent the spawn named, then answer."""
    if outputs == 0:
        return ("spawn_agent", {"message": "[turn:child] Run echo child."})
    if outputs == 1:
        last = [it for it in items or [] if isinstance(it, dict) and it.get("type") == "function_call_output"][-1]
        try:
            agent = json.loads(last.get("output") or "{}").get("agent_id")
        except (ValueError, AttributeError):
            agent = None
        return ("wait_agent", {"targets": [agent], "timeout_ms": 30000})
    return "Parent done: the child answered."


def text_of(content):
    if isinstance(content, str):
        return content
    return " ".join(c.get("text", "") for c in content or [] if isinstance(c, dict))


def since_last_prompt(items):
    """The last user message's text, and how many tool outputs follow it."""
    prompt, outputs = "", 0
    for it in items or []:
        if not isinstance(it, dict):
            continue
        if it.get("type") == "message" and it.get("role") == "user":
            text = text_of(it.get("content"))
            if not text.lstrip().startswith("<"):  # environment context and instructions are tagged
                prompt, outputs = text, 0
        elif it.get("type") in ("function_call_output", "custom_tool_call_output"):
            outputs += 1
    return prompt, outputs


def step(script, outputs):
    """The script's step after `outputs` tool outputs: each step of calls adds len(calls) outputs."""
    seen = 0
    for s in script:
        if isinstance(s, str) or seen == outputs:
            return s
        seen += len(s)
    return script[-1]


def sse(ev):
    return ("event: %s\ndata: %s\n\n" % (ev["type"], json.dumps(ev))).encode()


class Handler(JsonHandler):
    def do_GET(self):
        self._log({"method": "GET", "path": self.path})
        if self.path.split("?")[0].endswith("/models"):
            return self._send(200, {"object": "list", "data": [], "models": []})
        self._send(404, {"error": {"message": "mock: not found"}})

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        self._log({"method": "POST", "path": self.path, "body": body})
        if not self.path.split("?")[0].endswith("/responses"):
            return self._send(404, {"error": {"message": "mock: not found"}})
        with LOCK:
            COUNT["n"] += 1
            n = COUNT["n"]
        prompt, outputs = since_last_prompt(body.get("input"))
        if "[turn:sub]" in prompt and "[turn:child]" not in prompt:
            key = "sub"
            s = subagent_step(body.get("input"), outputs)
        else:
            key = "child" if "[turn:child]" in prompt else "2" if "[turn:2]" in prompt else "1"
            s = step(SCRIPTS[key], outputs)
        if isinstance(s, str):
            items = [{"type": "message", "id": "msg_%d" % n, "role": "assistant", "status": "completed",
                      "content": [{"type": "output_text", "text": s, "annotations": []}]}]
        elif isinstance(s, tuple):
            items = [{"type": "function_call", "id": "fc_%d" % n, "call_id": "call_%d" % n, "namespace": MULTI_AGENT,
                      "name": s[0], "arguments": json.dumps(s[1]), "status": "completed"}]
        else:
            items = [{"type": "function_call", "id": "fc_%d_%d" % (n, i), "call_id": "call_%d_%d" % (n, i),
                      "name": "exec_command", "arguments": json.dumps({"cmd": cmd}), "status": "completed"}
                     for i, cmd in enumerate(s)]
        usage = {"input_tokens": 1000 + 10 * n, "input_tokens_details": {"cached_tokens": 400},
                 "output_tokens": 20 + n, "output_tokens_details": {"reasoning_tokens": 5},
                 "total_tokens": 1020 + 11 * n}
        rid = "resp_mock_%d" % n
        started = {"id": rid, "object": "response", "status": "in_progress", "model": body.get("model"), "output": []}
        events = [{"type": "response.created", "response": started}]
        for i, item in enumerate(items):
            events.append({"type": "response.output_item.added", "output_index": i, "item": item})
            if item["type"] == "message":
                events.append({"type": "response.output_text.delta", "output_index": i, "content_index": 0,
                               "item_id": item["id"], "delta": item["content"][0]["text"]})
            events.append({"type": "response.output_item.done", "output_index": i, "item": item})
        events.append({"type": "response.completed",
                       "response": dict(started, status="completed", output=items, usage=usage)})
        self._log({"reply": {"id": rid, "script": key, "usage": usage, "items": [i["type"] for i in items]}})
        self._send(200, b"".join(sse(e) for e in events), "text/event-stream")


if __name__ == "__main__":
    serve(Handler)
