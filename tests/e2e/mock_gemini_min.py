#!/usr/bin/env python3
"""A minimal mock of the Gemini API (stdlib only) for the test of `hooktel install --agent gemini`.

Usage: mock_gemini_min.py PORT_FILE. Binds 127.0.0.1 on a free port and writes it to PORT_FILE.
A streamed call (`:streamGenerateContent`, the agent) gets one text answer in one SSE event, a plain
`:generateContent` (the routing classifier, JSON mode) a JSON answer, `:countTokens` a count;
anything else 404.
"""
import json, os, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

USAGE = {"promptTokenCount": 10, "candidatesTokenCount": 5, "totalTokenCount": 15}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, code, data, ctype="application/json"):
        self.send_response(code)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
        method = self.path.split("?")[0].rsplit(":", 1)[-1]
        if method == "countTokens":
            return self.send(200, b'{"totalTokens": 10}')
        json_mode = (body.get("generationConfig") or {}).get("responseMimeType") == "application/json"
        text = json.dumps({"reasoning": "mock", "model_choice": "flash", "complexity_reasoning": "mock",
                                     "complexity_score": 1}) if json_mode else "Hi from the mock."
        answer = {"candidates": [{"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP",
                                  "index": 0}], "usageMetadata": USAGE}
        if method == "streamGenerateContent":
            self.send(200, b"data: " + json.dumps(answer).encode() + b"\r\n\r\n", "text/event-stream")
        elif method == "generateContent":
            self.send(200, json.dumps(answer).encode())
        else:
            self.send(404, b'{"error": {"code": 404, "message": "mock: not found"}}')


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])
    server.serve_forever()
