"""Keeping secrets out of everything a run writes: outputs, errors, journal, logs.

Each run has a ``Redactor``. Every secret value a step reads through its integration is added
to it, and the engine passes what it records or shows through ``text``/``value`` before it
leaves the run: redaction happens at these edges, once, not inside each connector.

The policy itself (which forms of a secret are masked, and the rule for very short ones) is
``connectors.redaction``, one layer down, so that connectors masking what they derive from
secrets (a Basic auth pair, a password inside a DSN) apply exactly the same rule.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import MutableMapping
from typing import Any

from autoflow.connectors.sdk import redaction

MASK = redaction.MASK
Redactor = redaction.Redactor


class RedactingAdapter(logging.LoggerAdapter[logging.Logger]):
    """A logger adapter that adds run/step ids and masks secrets in the rendered message."""

    def __init__(self, logger: logging.Logger, extra: dict[str, Any], redactor: Redactor) -> None:
        super().__init__(logger, extra)
        self.redactor = redactor

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs

    def _emit(self, level: int, msg: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        if self.redactor:
            text = str(msg) % args if args else str(msg)
            # A traceback quotes values (a DSN, a URL): render it here, so it is masked too.
            if trace := _traceback(kwargs.pop("exc_info", None)):
                text = f"{text}\n{trace}"
            msg = self.redactor.text(text)
            args = ()
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        self.logger.log(level, msg, *args, **kwargs)

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        self._emit(level, msg, args, kwargs)


def _traceback(exc_info: Any) -> str:
    """The traceback ``logging`` would print for an ``exc_info`` argument, or ""."""
    if not exc_info:
        return ""
    exc: BaseException | None
    if isinstance(exc_info, BaseException):
        exc = exc_info
    elif isinstance(exc_info, tuple):
        exc = exc_info[1]
    else:
        exc = sys.exc_info()[1]
    if exc is None:
        return ""
    return "".join(traceback.format_exception(exc)).rstrip("\n")
