"""Log output: human lines on a terminal, JSON lines in the cluster, run and step ids on both.

Every record the engine and connectors write carries ``run_id`` and ``step_id`` extras when it
has them (``redact.RedactingAdapter`` adds them); the formatters here put them on the line.
"""

from __future__ import annotations

import json
import logging
import sys
import time

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, run_id, step_id, extras."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


class HumanFormatter(logging.Formatter):
    """``  [step] message`` for a person watching a run."""

    def format(self, record: logging.LogRecord) -> str:
        step = getattr(record, "step_id", None)
        prefix = f"  [{step}] " if step else "  "
        level = "" if record.levelno == logging.INFO else f"{record.levelname.lower()}: "
        return f"{prefix}{level}{record.getMessage()}"


def configure(fmt: str = "human", level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else HumanFormatter())
    root = logging.getLogger("autoflow")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
