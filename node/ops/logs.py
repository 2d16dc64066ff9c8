"""Structured logs: one JSON object a line, with the message id and destination when known.

Call sites pass context through ``extra={"message_id": …, "destination": …}``; the formatter
lifts the known context keys to the top level so operators can grep or ship them as fields.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys

CONTEXT_KEYS = ("node", "message_id", "destination", "origin", "doc_id", "unit", "peer", "code", "status",
                "elapsed_ms", "attempt", "request_id", "method", "path", "who")


class JsonFormatter(logging.Formatter):
    def __init__(self, node_id: str) -> None:
        super().__init__()
        self.node_id = node_id

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
               "level": record.levelname.lower(), "logger": record.name, "node": self.node_id,
               "msg": record.getMessage()}
        for key in CONTEXT_KEYS:
            if key in record.__dict__:
                out[key] = record.__dict__[key]
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


def configure(node_id: str, level: str = "INFO", stream=None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter(node_id))
    root = logging.getLogger("gwx")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
