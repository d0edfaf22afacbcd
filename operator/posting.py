"""Posting the Events that ``events`` decides, through kopf's event poster.

kopf writes a core/v1 Event about the object in the background (``kubectl describe`` shows
it); this is the only place the operator's decisions about Events meet kopf.
"""

from __future__ import annotations

from typing import Any, cast

import kopf

from autoflow.operator import events

MAX_MESSAGE = 1024


def post(obj: dict[str, Any], event: events.Event | None) -> None:
    """Post ``event`` about ``obj`` (an API object with apiVersion, kind and metadata)."""
    if event is None:
        return
    message = event.message
    if len(message) > MAX_MESSAGE:
        message = message[: MAX_MESSAGE - 3] + "..."
    kopf.event(cast(kopf.Body, obj), type=event.type, reason=event.reason, message=message)
