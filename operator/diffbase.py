"""kopf's diff base, bounded: what the operator remembers of an object never outgrows it.

kopf finds changes by comparing an object with the "essence" it stored after the last
handling, in an annotation. Stored whole, a Workflow of 1 MB needs a 1 MB annotation, over
the API server's 256 KiB limit for all annotations of an object together: the patch that
stores it fails, kopf retries it for ever and the Workflow never gets a status.

``BoundedDiffBaseStorage`` builds the essence as kopf does, then ``fit``s it into
``BUDGET`` bytes of JSON: while it is too large, its largest parts, one at a time and
recursively, are replaced by a digest of their content (``"#sha256:<hex>"``). kopf builds
the current essence the same way before comparing it with the stored one, so a change is
still found (it changes a part or a digest); only the ``old``/``new`` values kopf hands to
handlers show digests for the large parts, and the handlers read ``body`` for data anyway.
Small parts such as ``spec.cancel`` stay as they are, so field handlers keep working.

Objects within the budget (nearly all) are stored exactly as before, so an operator upgrade
sees no change on them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any, cast

import kopf

# An eighth of the annotation limit: room for kubectl's, Argo CD's and kopf's own.
BUDGET = 32 * 1024
DIGEST_PREFIX = "#sha256:"


def _encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str).encode()


def _size(value: Any) -> int:
    return len(_encode(value))


def digest(value: Any) -> str:
    """A short stand-in for ``value`` that changes whenever it does."""
    return DIGEST_PREFIX + hashlib.sha256(_encode(value)).hexdigest()


_DIGEST_SIZE = _size(digest(None))


def fit(value: Any, budget: int) -> Any:
    """``value`` in ``budget`` bytes of JSON: largest parts replaced by digests first.

    Deterministic (largest first, then by key), so the same value always fits the same way
    and two values fit the same way only when they are equal (up to a SHA-256 collision).
    """
    size = _size(value)
    if size <= budget:
        return value
    if budget < _DIGEST_SIZE or not isinstance(value, dict | list) or not value:
        return digest(value)
    result: Any = dict(value) if isinstance(value, dict) else list(value)
    keys: Iterable[Any] = value.keys() if isinstance(value, dict) else range(len(value))
    sizes = {key: _size(value[key]) for key in keys}
    for key in sorted(sizes, key=lambda k: (-sizes[k], str(k))):
        if size <= budget or sizes[key] <= _DIGEST_SIZE:
            break
        # The part gets what the others leave; compact JSON changes by exactly its change.
        part = fit(value[key], budget - (size - sizes[key]))
        size += _size(part) - sizes[key]
        result[key] = part
    return result if size <= budget else digest(value)


class BoundedDiffBaseStorage(kopf.AnnotationsDiffBaseStorage):
    """kopf's annotation diff base with the essence ``fit`` into ``budget`` bytes."""

    def __init__(self, *, budget: int = BUDGET, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.budget = budget

    def build(
        self,
        *,
        body: kopf.Body,
        extra_fields: Iterable[Any] | None = None,
    ) -> kopf.BodyEssence:
        essence = super().build(body=body, extra_fields=extra_fields)
        fitted = fit(dict(essence), self.budget)
        # kopf wants a mapping; only thousands of top-level fields would leave a digest.
        return cast(kopf.BodyEssence, fitted if isinstance(fitted, dict) else {"#": fitted})
