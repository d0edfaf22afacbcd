"""Gateway configuration: one pydantic settings object, read from ``AUTOFLOW_GATEWAY_*``.

- ``AUTOFLOW_GATEWAY_PUBLIC_URL`` (none): the gateway's URL as senders reach it
  (``https://hooks.example.com``); status URLs in answers start with it. None: the URL the
  request came to
- ``AUTOFLOW_GATEWAY_MAX_SYNC_SECONDS`` (60): the longest a ``sync`` webhook waits,
  whatever its ``response.timeout`` says
- ``AUTOFLOW_GATEWAY_NAMESPACES`` (all): comma-separated namespaces whose Workflows are served
- ``AUTOFLOW_GATEWAY_SECRET_TTL_SECONDS`` (30): how long a Secret read is reused
- ``AUTOFLOW_GATEWAY_METRICS_PORT`` (9090): Prometheus metrics port of ``autoflow gateway``
"""

from __future__ import annotations

import pydantic_settings


class Settings(pydantic_settings.BaseSettings):
    model_config = pydantic_settings.SettingsConfigDict(env_prefix="AUTOFLOW_GATEWAY_")

    public_url: str = ""
    max_sync_seconds: float = 60.0
    namespaces: str = ""
    secret_ttl_seconds: float = 30.0
    metrics_port: int = 9090

    def namespace_list(self) -> list[str]:
        return [n.strip() for n in self.namespaces.split(",") if n.strip()]
