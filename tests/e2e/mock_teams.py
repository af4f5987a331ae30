#!/usr/bin/env python3
"""Scripted mock of the Anthropic Messages API for an agent team (stdlib only), for hooktel's team tests:
a lead that creates a task, spawns a teammate `worker` and messages it; the teammate (its first user
message holds TEAM_MARKER) claims the task, runs `echo from-teammate`, completes the task and messages
the lead. Adapted from the offline harness's team probe. The server is mock_api.py's, with this script
in place of its own.

Usage: mock_teams.py --port 0 --workdir DIR --log requests.jsonl [--port-file F]
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mock_api  # noqa: E402
from mock_api import text_of  # noqa: E402

TEAM_MARKER = "TEAMMATE-TASK-9c1e"


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
    return mock_api.scripted_turn(key, scripts(tools, workdir)[key], msgs)


if __name__ == "__main__":
    mock_api.plan = plan
    mock_api.main()
