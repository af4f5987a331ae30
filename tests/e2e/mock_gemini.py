#!/usr/bin/env python3
"""Scripted mock of the Gemini API (v1beta, stdlib only), for hooktel's Gemini CLI tests.

Usage: mock_gemini.py --port 0 --log requests.jsonl [--port-file F]

Binds 127.0.0.1 only. Serves POST .../models/MODEL:streamGenerateContent?alt=sse (the agent),
:generateContent and :countTokens; anything else is logged and answered 404. An agent request is
answered from a stateless script chosen by a marker in the latest user prompt (the last user content
with text), the step being how many model turns follow that prompt in `contents`:

  "[turn:text]" (or no marker): a text answer
  "[turn:shell]": run_shell_command `echo hi` -> text
  "[turn:parallel]": TWO calls in one response, run_shell_command `sleep 0.5; echo one` and `echo two`
      (the first ends last: Gemini runs them at once) -> text
  "[turn:exit]": run_shell_command `echo failing >&2; exit 3` (Gemini calls it a success) -> text
  "[turn:missing]": read_file of a missing file (a tool error) -> text
  "[turn:fail]": the failing command -> the missing file -> text

Every text answer is streamed in CHUNKS SSE events: the early ones carry usage without
candidatesTokenCount, the last one the full usage and finishReason (as Gemini streams); a call
response is one event. Usage is distinct per agent response, n counting them from 1:
promptTokenCount = 1000 + 100 * n (cachedContentTokenCount = 400 of it when n is even),
candidatesTokenCount = 10 + n, thoughtsTokenCount = 5 when n is a multiple of 3.
JSON-mode requests (generationConfig.responseMimeType application/json: the routing classifier and
other utility calls) get a small JSON answer and usage of their own: promptTokenCount = 50 + k,
candidatesTokenCount = 5, k counting them from 1.

The log (--log) gets one JSON line per request ({"request": {n, method, path, client, kind, body}},
kind "agent", "utility" (JSON mode), "count" or "other") and one per response served
({"reply": {n, kind, model, script, step, usage, parts, chunks}}), so a test can add up what was served.
"""
import json

from mock_http import LOCK, JsonHandler, serve

COUNT = {"request": 0, "agent": 0, "utility": 0}
CHUNKS = 3
SHELL = "run_shell_command"
# a step is a list of calls (one response) or the final text
SCRIPTS = {
    "text": ["Streamed answer: the quick brown fox jumps over the lazy dog."],
    "shell": [[(SHELL, {"command": "echo hi", "description": "print hi"})], "Shell done: it printed hi."],
    "parallel": [
        [(SHELL, {"command": "sleep 0.5; echo one", "description": "print one, slowly"}),
         (SHELL, {"command": "echo two", "description": "print two"})],
        "Parallel done: one and two.",
    ],
    "exit": [[(SHELL, {"command": "echo failing >&2; exit 3", "description": "fail"})], "Exit done: it exited 3."],
    "missing": [[("read_file", {"file_path": "missing.txt"})], "Missing done: no such file."],
    "fail": [
        [(SHELL, {"command": "echo failing >&2; exit 3", "description": "fail"})],
        [("read_file", {"file_path": "missing.txt"})],
        "Fail done: exit 3, then no such file.",
    ],
}


def latest_prompt(contents):
    """The latest user prompt's text, and how many model turns follow it."""
    prompt, steps = "", 0
    for c in contents or []:
        if not isinstance(c, dict):
            continue
        parts = [p for p in c.get("parts") or [] if isinstance(p, dict)]
        if c.get("role") == "model":
            steps += 1
        elif any("text" in p for p in parts) and not any("functionResponse" in p for p in parts):
            prompt, steps = " ".join(p.get("text", "") for p in parts), 0
    return prompt, steps


def script_of(prompt):
    for key in SCRIPTS:
        if "[turn:%s]" % key in prompt:
            return key
    return "text"


def agent_usage(n):
    u = {"promptTokenCount": 1000 + 100 * n, "candidatesTokenCount": 10 + n}
    if n % 2 == 0:
        u["cachedContentTokenCount"] = 400
    if n % 3 == 0:
        u["thoughtsTokenCount"] = 5
    u["totalTokenCount"] = u["promptTokenCount"] + u["candidatesTokenCount"] + u.get("thoughtsTokenCount", 0)
    return u


def partial(usage):
    """What Gemini streams before the last chunk: the prompt side only."""
    keep = ("promptTokenCount", "cachedContentTokenCount")
    u = {k: v for k, v in usage.items() if k in keep}
    u["totalTokenCount"] = usage["promptTokenCount"]
    return u


def pieces(text, k):
    words = text.split(" ")
    step = max(1, -(-len(words) // k))
    return [" ".join(words[i:i + step]) + (" " if i + step < len(words) else "")
            for i in range(0, len(words), step)]


def chunk(model, rid, parts, usage, last):
    cand = {"content": {"role": "model", "parts": parts}, "index": 0}
    if last:
        cand["finishReason"] = "STOP"
    return {"candidates": [cand], "usageMetadata": usage if last else partial(usage),
            "modelVersion": model, "responseId": rid}


class Handler(JsonHandler):
    def _count(self, key):
        with LOCK:
            COUNT[key] += 1
            return COUNT[key]

    def _request(self, kind, body=None):
        n = self._count("request")
        self._log({"request": {"n": n, "method": self.command, "path": self.path,
                               "client": self.client_address[0], "kind": kind, "body": body}})

    def do_GET(self):
        self._request("other")
        self._send(404, {"error": {"code": 404, "message": "mock: not found"}})

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        path = self.path.split("?")[0]
        model, _, method = path.rsplit("/", 1)[-1].partition(":")
        json_mode = (body.get("generationConfig") or {}).get("responseMimeType") == "application/json"
        if method == "countTokens":
            self._request("count", body)
            return self._send(200, {"totalTokens": 42})
        if method not in ("generateContent", "streamGenerateContent"):
            self._request("other", body)
            return self._send(404, {"error": {"code": 404, "message": "mock: not found"}})
        kind = "utility" if json_mode else "agent"
        self._request(kind, body)
        n = self._count(kind)
        if json_mode:
            key, step = "utility", 0
            text = json.dumps({"reasoning": "mock", "model_choice": "flash", "next_speaker": "user",
                               "complexity_reasoning": "mock", "complexity_score": 1})
            s = text
            usage = {"promptTokenCount": 50 + n, "candidatesTokenCount": 5, "totalTokenCount": 55 + n}
        else:
            prompt, step = latest_prompt(body.get("contents"))
            key = script_of(prompt)
            script = SCRIPTS[key]
            s = script[min(step, len(script) - 1)]
            usage = agent_usage(n)
        rid = "mock-%s-%d" % (kind, n)
        if isinstance(s, str):
            texts = pieces(s, CHUNKS) if method == "streamGenerateContent" else [s]
            chunks = [chunk(model, rid, [{"text": t}], usage, i == len(texts) - 1) for i, t in enumerate(texts)]
            parts = ["text"]
        else:
            calls = [{"functionCall": {"name": name, "args": args}} for name, args in s]
            chunks = [chunk(model, rid, calls, usage, True)]
            parts = ["functionCall:" + name for name, _ in s]
        self._log({"reply": {"n": n, "kind": kind, "model": model, "script": key, "step": step,
                             "usage": usage, "parts": parts, "chunks": len(chunks), "id": rid}})
        if method == "streamGenerateContent":
            data = b"".join(("data: " + json.dumps(c) + "\r\n\r\n").encode() for c in chunks)
            self._send(200, data, "text/event-stream")
        else:
            self._send(200, chunks[0])


if __name__ == "__main__":
    serve(Handler)
