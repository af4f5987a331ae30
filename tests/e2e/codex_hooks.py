#!/usr/bin/env python3
"""What a Codex CLI user does in `/hooks`, for hooktel's tests: list the hooks Codex sees (with their
trust), or trust every one of them, through `codex app-server` (JSON-RPC on stdio, offline).

Usage: codex_hooks.py CODEX_BIN (list | trust-all)
  list       prints one JSON line per hook: {"key", "command", "trustStatus"}
  trust-all  records trust for every hook not trusted yet (as `/hooks` does), then lists them
Runs with the environment it is given (HOME, CODEX_HOME) and the current directory.
"""
import json, os, subprocess, sys


def main():
    codex, action = sys.argv[1], sys.argv[2]
    server = subprocess.Popen([codex, "app-server"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    ids = iter(range(1, 1000))

    def call(method, params):
        n = next(ids)
        server.stdin.write(json.dumps({"jsonrpc": "2.0", "id": n, "method": method, "params": params}) + "\n")
        server.stdin.flush()
        while True:
            line = server.stdout.readline()
            if not line:
                sys.exit(f"codex app-server exited before answering {method}")
            msg = json.loads(line)
            if msg.get("id") == n:
                if "error" in msg:
                    sys.exit(f"{method}: {msg['error']}")
                return msg["result"]

    call("initialize", {"clientInfo": {"name": "hooktel-tests", "version": "0"}})
    server.stdin.write(json.dumps({"jsonrpc": "2.0", "method": "initialized"}) + "\n")
    server.stdin.flush()

    def hooks():
        listed = call("hooks/list", {"cwds": [os.getcwd()]})
        return [h for entry in listed["data"] for h in entry["hooks"]]

    if action == "trust-all":
        state = {h["key"]: {"trusted_hash": h["currentHash"]} for h in hooks() if h["trustStatus"] != "trusted"}
        if state:
            call("config/batchWrite", {"edits": [{"keyPath": "hooks.state", "mergeStrategy": "upsert", "value": state}]})
    for h in hooks():
        print(json.dumps({"key": h["key"], "command": h.get("command"), "trustStatus": h["trustStatus"]}))
    server.stdin.close()
    server.kill()


if __name__ == "__main__":
    main()
