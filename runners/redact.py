"""Keeping secrets out of everything a run writes: outputs, errors, journal, logs.

Each run has a ``Redactor``. Every secret value a step reads through its integration is added
to it, and the engine passes what it records or shows through ``text``/``value`` before it
leaves the run: redaction happens at these edges, once, not inside each connector.
"""

from __future__ import annotations

import logging
import re
from collections.abc import MutableMapping
from typing import Any

MASK = "***"
# Values this short would mask ordinary words; credentials are longer than this.
MIN_SECRET_LENGTH = 4


class Redactor:
    """Replaces known secret values with ``***`` in text and in JSON-like data."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def add(self, secret: str) -> None:
        if len(secret) >= MIN_SECRET_LENGTH and secret not in self._secrets:
            self._secrets.add(secret)
            ordered = sorted(self._secrets, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(s) for s in ordered))

    def text(self, text: str) -> str:
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)

    def value(self, value: Any) -> Any:
        """A copy of JSON-like data with every string redacted (keys too)."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.text(str(k)): self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value


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
            msg = self.redactor.text(str(msg) % args if args else str(msg))
            args = ()
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        self.logger.log(level, msg, *args, **kwargs)

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        self._emit(level, msg, args, kwargs)
