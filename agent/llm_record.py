"""llm.jsonl: `RecordingModel` writes every exchange of a run to it, `ReplayModel` answers from it (or from a
scripted transcript) so a run can be re-executed exactly, and `request_messages` reads the full requests
back out of its deltas.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.llm import Model, ReplayDiverged, ReplayExhausted, Reply, RequestRejected, response_format


def _tools_sha256(tools: list[dict]) -> str:
    return hashlib.sha256(json.dumps(tools, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


MAX_OPEN_CONVERSATIONS = 64  # conversations whose last request is kept for deltas (lanes run a few at once)


class RecordingModel:
    """Wraps a Model; appends one JSON line per exchange to `path` (flushed and fsynced, so a killed run
    loses nothing). The full tools list is stored once per distinct list, later only its sha256."""

    def __init__(self, inner: Model, path: Path) -> None:
        self.inner = inner
        self.name = inner.name
        self.path = path
        self.seq = 0
        self._tools_stored: set[str] = set()
        # per conversation (tag): seq and messages of its previous request, plus the reply; a few
        # conversations run at once with lanes, so deltas are taken per tag
        self._last: dict[str, tuple[int, list[dict]]] = {}
        self._lock = threading.Lock()
        if path.exists():  # resuming: continue the numbering, do not repeat stored tool lists
            for line in _lines(path):
                rec = json.loads(line) if line.strip() else {}
                if "response" in rec or "rejected" in rec:
                    self.seq = max(self.seq, int(rec.get("seq", self.seq)) + 1)
                if "tools" in rec.get("request", {}):
                    self._tools_stored.add(rec["request"]["tools_sha256"])

    def complete(self, messages: list[dict], tools: list[dict], *, tag: str, schema: dict | None = None) -> Reply:
        started = datetime.now(UTC)
        t0 = time.perf_counter()
        try:
            reply = self.inner.complete(messages, tools, tag=tag, schema=schema)
        except RequestRejected as e:  # recorded too, so a replay meets the same refusal at the same point
            with self._lock:
                self._write(tag, messages, tools, e, started, time.perf_counter() - t0, schema)
            raise
        duration = time.perf_counter() - t0
        with self._lock:
            self._write(tag, messages, tools, reply, started, duration, schema)
        return reply

    def _write(self, tag: str, messages: list[dict], tools: list[dict], reply: Reply | RequestRejected,
               started: datetime, duration: float, schema: dict | None = None) -> None:
        sha = _tools_sha256(tools)
        request: dict[str, Any] = {"model": self.inner.name, "tools_sha256": sha,
                                   "tool_call_ids": _tool_result_ids(messages)}
        # A conversation only appends, so store what is new since its previous request (full requests
        # come back with `request_messages`); storing every history whole would grow quadratically.
        last = self._last.pop(tag, None)
        if last and messages[: len(last[1])] == last[1]:
            request["messages_from"] = {"seq": last[0], "count": len(last[1])}
            request["messages_added"] = messages[len(last[1]):]
        else:
            request["messages"] = messages
        if isinstance(reply, Reply):
            self._last[tag] = (self.seq, [*messages, reply.as_message()])
        else:
            self._last[tag] = (self.seq, list(messages))
        while len(self._last) > MAX_OPEN_CONVERSATIONS:  # oldest first: dicts keep insertion order
            self._last.pop(next(iter(self._last)))
        if sha not in self._tools_stored:
            request["tools"] = tools
            self._tools_stored.add(sha)
        request.update(getattr(self.inner, "settings", {}))
        if schema is not None and getattr(self.inner, "structured", False):
            request["response_format"] = response_format(schema)  # and no tools were sent with it
        record = {"seq": self.seq, "tag": tag, "time": started.isoformat(timespec="milliseconds"),
                  "duration_s": round(duration, 3), "request": request}
        if isinstance(reply, Reply):
            record["response"] = reply.to_json()
        else:
            record["rejected"] = {"status": reply.status, "message": reply.detail}
        with self.path.open("a") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.seq += 1


def _lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8", errors="replace") as f:
        yield from f


def request_messages(path: Path) -> Iterator[tuple[dict, list[dict]]]:
    """Every recorded exchange with its request's full message list, rebuilt from the deltas."""
    last: dict[str, tuple[int, list[dict]]] = {}  # per tag, as RecordingModel writes them
    for line in _lines(path):
        rec = json.loads(line) if line.strip() else {}
        req = rec.get("request")
        if req is None:
            continue
        before = last.pop(rec.get("tag", ""), None)
        if "messages" in req:
            messages = req["messages"]
        elif before is not None and req["messages_from"]["seq"] == before[0]:
            messages = before[1][: req["messages_from"]["count"]] + req["messages_added"]
        else:
            raise ValueError(f"{path}: exchange {rec.get('seq')} refers to a missing earlier exchange")
        yield rec, messages
        answer = [Reply.from_json(rec["response"]).as_message()] if "response" in rec else []
        last[rec.get("tag", "")] = (rec["seq"], [*messages, *answer])
        while len(last) > MAX_OPEN_CONVERSATIONS:
            last.pop(next(iter(last)))


def _tool_result_ids(messages: list[dict]) -> list[str]:
    return [m.get("tool_call_id", "") for m in messages if m.get("role") == "tool"]


class ReplayModel:
    """Answers from a recorded llm.jsonl or a scripted transcript, in order, checking that each request
    still fits the recorded conversation."""

    def __init__(self, path: Path, start: int = 0) -> None:
        self.path = path
        self.name = f"replay:{path}"
        self.records = [
            rec for rec in (json.loads(line) for line in path.read_text().splitlines() if line.strip())
            if "response" in rec or "rejected" in rec
        ]
        if start > len(self.records):
            raise ReplayExhausted(f"{path}: cannot start at reply {start}, only {len(self.records)} recorded")
        self.position = start  # replies consumed so far; a resumed or forked run continues from here
        self._used = set(range(start))
        self._first = start  # no reply before this one is unused
        self._lock = threading.Lock()

    def complete(self, messages: list[dict], tools: list[dict], *, tag: str, schema: dict | None = None) -> Reply:
        with self._lock:
            n = self._next(tag)
            rec = self.records[n]
            if "request" in rec:
                # Tool result *contents* may differ (timings change on re-measure); their ids may not.
                want = rec["request"].get("tool_call_ids") or _tool_result_ids(rec["request"].get("messages", []))
                got = _tool_result_ids(messages)
                if want != got:
                    raise ReplayDiverged(
                        f"{self.path}: at reply {n} (tag {tag}) the recorded request had {len(want)} tool results "
                        f"{want[-3:]}, this one has {len(got)} {got[-3:]}"
                    )
            self._used.add(n)
            self.position += 1
            if "rejected" in rec:
                raise RequestRejected(self.name, rec.get("request", {}).get("model", ""),
                                      int(rec["rejected"].get("status", 400)), rec["rejected"].get("message", ""))
            return Reply.from_json(rec["response"])

    def _next(self, tag: str) -> int:
        """The first unused reply of this conversation. With one lane that is simply the next reply; with
        several, conversations interleave differently on every run, so replies are matched by tag."""
        while self._first in self._used:
            self._first += 1
        if self._first >= len(self.records):
            raise ReplayExhausted(f"{self.path}: all {len(self.records)} recorded replies used (asked for tag {tag})")
        for i in range(self._first, len(self.records)):
            if i not in self._used and self.records[i].get("tag", tag) == tag:
                return i
        raise ReplayDiverged(f"{self.path}: expected tag {self.records[self._first]['tag']} got {tag} "
                             f"at reply {self._first}")
