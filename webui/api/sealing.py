"""Sealed cookies: state the browser carries between two requests that no replica keeps.

A sealed value is JSON encrypted and authenticated with Fernet (AES-CBC + HMAC-SHA256,
``cryptography``) under one key shared by every webui replica, and stamped with the time it
was sealed: ``open`` refuses a value that was changed, sealed under another key or is older
than the lifetime given, so the reader gets either exactly what was sealed or None.

    seal(data) ─► Set-Cookie (HttpOnly, SameSite=Lax, Max-Age) ─► browser ─► Cookie
        ─► open(value, lifetime) ─► data | None

A sealed value is the Fernet token without its base64 padding: only letters, digits, ``-`` and
``_``, so no server quotes it in a ``Set-Cookie`` and every client hands back the same text.

Used for the sign-in session and the pending OIDC sign-in (``oidc``) and for the pending
OAuth2 connect of an Integration (``routes.integrations``). The key is the session key
(``AUTOFLOW_WEBUI_SESSION_KEY``) in the cluster; a workspace derives one from its access
token (``derived``), so a restart with the same token reads the cookies it sealed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from cryptography import fernet


def new_key() -> str:
    return fernet.Fernet.generate_key().decode()


class Sealer:
    """Seals and opens values under one Fernet key (32 url-safe base64 bytes)."""

    def __init__(self, key: str) -> None:
        self._fernet = fernet.Fernet(key.encode())

    @classmethod
    def derived(cls, secret: str, purpose: str) -> Sealer:
        """A sealer whose key is derived from ``secret`` (HMAC-SHA256 over ``purpose``)."""
        digest = hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).digest()
        return cls(base64.urlsafe_b64encode(digest).decode())

    def seal(self, data: dict[str, Any], *, at: float | None = None) -> str:
        """``data`` sealed, stamped ``at`` (now unless given)."""
        raw = json.dumps(data).encode()
        stamp = int(time.time() if at is None else at)
        return self._fernet.encrypt_at_time(raw, stamp).decode().rstrip("=")

    def open(self, value: str, lifetime: float) -> dict[str, Any] | None:
        """What was sealed, or None: changed, another key's, or older than ``lifetime``."""
        token = value + "=" * (-len(value) % 4)
        try:
            data = json.loads(self._fernet.decrypt(token.encode(), ttl=int(lifetime)))
        except (fernet.InvalidToken, ValueError):
            return None
        return data if isinstance(data, dict) else None
