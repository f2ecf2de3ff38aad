"""Structured, quiet-by-default logging: one line per event with key=value (or JSON) fields.

Call sites pass fields through ``extra={...}``; the formatter renders whatever was passed.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

# Attributes every LogRecord has; anything else came from ``extra=``.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD}


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        head = f"{self.formatTime(record)} {record.levelname.lower()} {record.name}: "
        tail = " ".join(
            f"{k}={json.dumps(v, ensure_ascii=False, default=str)}"
            for k, v in _fields(record).items()
        )
        text = head + record.getMessage() + (f" {tail}" if tail else "")
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": self.formatTime(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": record.getMessage(),
            **_fields(record),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False, default=str)


def configure_logging(level: str = "WARNING", as_json: bool = False) -> None:
    """Route the ``rag`` loggers to stderr at ``level``; safe to call more than once."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if as_json else KeyValueFormatter())
    root = logging.getLogger("rag")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
