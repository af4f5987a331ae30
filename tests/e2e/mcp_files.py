#!/usr/bin/env python3
"""A small stdio MCP server (stdlib only) for hooktel's end-to-end tests: one tool, `read`, that
answers with the first line of a file of the work directory.

Claude Code starts it from the test's `--mcp-config` as server `files`, so the model can call
`mcp__files__read`. It speaks MCP's stdio transport: newline-delimited JSON-RPC 2.0 on stdin/stdout.
Every request it gets is appended to --log as one JSON line, so a test can tell the call reached it.

Usage: mcp_files.py --log requests.jsonl
"""
import argparse, json, sys

TOOL = {
    "name": "read",
    "description": "Read the first line of a file of the project.",
    "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
}


def answer(req):
    method, params = req.get("method"), req.get("params") or {}
    if method == "initialize":
        return {"protocolVersion": params.get("protocolVersion", "2025-06-18"),
                "capabilities": {"tools": {"listChanged": False}},
                "serverInfo": {"name": "files", "version": "1.0.0"}}
    if method == "tools/list":
        return {"tools": [TOOL]}
    if method == "tools/call":
        path = (params.get("arguments") or {}).get("path", "")
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                line = fh.readline().strip()
        except OSError as e:
            return {"content": [{"type": "text", "text": f"cannot read {path}: {e.strerror}"}], "isError": True}
        return {"content": [{"type": "text", "text": line}]}
    if method == "ping":
        return {}
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    args = ap.parse_args()
    for raw in sys.stdin:
        try:
            req = json.loads(raw)
        except ValueError:
            continue
        with open(args.log, "a") as fh:
            fh.write(json.dumps(req) + "\n")
        if "id" not in req:  # a notification: no answer
            continue
        result = answer(req)
        if result is None:
            reply = {"jsonrpc": "2.0", "id": req["id"], "error": {"code": -32601, "message": "method not found"}}
        else:
            reply = {"jsonrpc": "2.0", "id": req["id"], "result": result}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
