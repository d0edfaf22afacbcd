"""The one redaction policy: how a secret value is kept out of what a run shows.

A ``Redactor`` holds secret values and replaces them with ``***`` in text and in JSON-like
data. Two kinds of code hold one:

- the run (``runners.redact``): every value a step reads through its Integration's secrets
  accessor is added, and the engine passes step outputs, error messages and log lines
  through it before they leave the run (journal, status, events, logs);
- a connector, for values it derives from secrets and sends on the wire (a Basic
  ``Authorization`` pair, an SMTP ``AUTH PLAIN`` string, the password inside a DSN or URL):
  the run never sees those, so the connector masks them in what it returns or raises.

This module sits in the connectors layer, below the runners (see the import-linter layers in
pyproject.toml), so that both use this class: one policy, one implementation.

The policy::

    each secret ─► its forms: raw, URL-encoded (%XX upper and lower case, + or %20 for
                   spaces, as httpx writes a query), JSON-encoded (ASCII-escaped or not)
    a secret of MIN_SUBSTRING_LENGTH characters or more
        ─► every occurrence of any form is replaced, wherever it is in a string
    a shorter secret (a 1-character password, a 3-letter user name)
        ─► a string that *is* one of its forms, whole, is replaced; inside longer
           text it is left alone

Masking a short value wherever it occurs would corrupt ordinary data (a password ``y``
turns ``xkcd-y`` into ``xkcd-***``) and, by what is left around the mask, tell a reader the
secret. A whole field or message equal to it is still masked.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterable
from typing import Any

MASK = "***"
# Secrets shorter than this are masked only where a whole string equals them.
MIN_SUBSTRING_LENGTH = 4

_PERCENT = re.compile(r"%[0-9A-F]{2}")


def forms(secret: str) -> set[str]:
    """The ways ``secret`` appears in text: raw, URL- and form-encoded, inside a JSON string."""
    quoted = {
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret, safe=""),
        # As httpx writes a query value: RFC 3986 unreserved kept, space as +.
        urllib.parse.quote_plus(secret, safe="-._~"),
        # As URL builders (httpx paths, libpq, redis-py) leave sub-delimiters alone.
        urllib.parse.quote(secret, safe="-._~!$&'()*+,;=:@"),
    }
    # Percent-escapes are case-insensitive; some servers echo them in lower case.
    quoted |= {_PERCENT.sub(lambda m: m.group(0).lower(), q) for q in quoted}
    return {
        secret,
        *quoted,
        json.dumps(secret)[1:-1],  # inside a JSON string, non-ASCII escaped
        json.dumps(secret, ensure_ascii=False)[1:-1],
    }


class Redactor:
    """Replaces known secret values, raw or encoded, with ``***`` in text and JSON-like data."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._whole: set[str] = set()  # forms of short secrets: masked only as a whole string
        self._anywhere: set[str] = set()  # forms of longer secrets: masked wherever they occur
        self._pattern: re.Pattern[str] | None = None
        for secret in secrets:
            self.add(secret)

    def __bool__(self) -> bool:
        return bool(self._secrets)

    def add(self, secret: str | None) -> None:
        """Mask ``secret`` (and its encoded forms) from now on; empty values are ignored."""
        if not secret or secret in self._secrets:
            return
        self._secrets.add(secret)
        if len(secret) < MIN_SUBSTRING_LENGTH:
            self._whole |= forms(secret)
            return
        self._anywhere |= forms(secret)
        # Longest first, so a secret that contains another is masked whole.
        ordered = sorted(self._anywhere, key=len, reverse=True)
        self._pattern = re.compile("|".join(re.escape(form) for form in ordered))

    def text(self, text: str) -> str:
        if text in self._whole:
            return MASK
        if self._pattern is None:
            return text
        return self._pattern.sub(MASK, text)

    def value(self, value: Any) -> Any:
        """A copy of JSON-like data with every string redacted, keys too."""
        if not self._secrets:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {
                self.text(k) if isinstance(k, str) else k: self.value(v) for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value
