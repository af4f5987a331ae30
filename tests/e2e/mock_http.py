"""What the scripted model-API mocks of hooktel's agent tests share (mock_responses.py, mock_gemini.py):
a JSON-over-HTTP handler that logs as JSON lines and answers with a body, and the command line that
serves it on 127.0.0.1 (`--port 0 --log requests.jsonl [--port-file F]`). Stdlib only.
"""
import argparse, json, os, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()


class JsonHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _log(self, rec):
        with LOCK, open(self.server.logfile, "a") as fh:
            fh.write(json.dumps(rec) + "\n")

    def _send(self, code, data, ctype="application/json"):
        data = data if isinstance(data, bytes) else json.dumps(data).encode()
        self.send_response(code)
        self.send_header("content-type", ctype)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def serve(handler):
    """Serve `handler` on 127.0.0.1 as the command line says; the port chosen is written to
    --port-file (atomically) once listening."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--log", required=True)
    ap.add_argument("--port-file")
    args = ap.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    srv.daemon_threads = True
    srv.logfile = args.log
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as fh:
            fh.write(str(srv.server_address[1]))
        os.replace(args.port_file + ".tmp", args.port_file)
    srv.serve_forever()
