"""Operator configuration: one pydantic settings object, read from ``AUTOFLOW_*`` variables.

- ``AUTOFLOW_RUNNER_IMAGE``: image of runner Jobs unless a Workflow sets ``runtime.image``
- ``AUTOFLOW_RUNNER_BACKOFF_LIMIT`` (3): pod retries of a runner Job; a retried pod resumes
- ``AUTOFLOW_JOB_TTL_SECONDS`` (3600): ``ttlSecondsAfterFinished`` of runner Jobs
- ``AUTOFLOW_NAMESPACES`` (all): comma-separated namespaces to watch
- ``AUTOFLOW_METRICS_PORT`` (9090): Prometheus metrics port
- ``AUTOFLOW_HANDLER_BACKOFF_SECONDS`` (5): wait before a failed reconcile is tried again
- ``AUTOFLOW_LOG_LEVEL`` (info): debug, info, warning or error; kopf's own logs show from
  warning up, or from debug up when this is debug

Runner pods run as a ServiceAccount the operator makes for each run (it may read that run
and write its status, nothing else), or as the Workflow's ``runtime.serviceAccountName``.
"""

from __future__ import annotations

from typing import Literal

import pydantic_settings


class Settings(pydantic_settings.BaseSettings):
    model_config = pydantic_settings.SettingsConfigDict(env_prefix="AUTOFLOW_")

    runner_image: str = "ghcr.io/autoflow/autoflow:0.1.0"
    runner_backoff_limit: int = 3
    job_ttl_seconds: int = 3600
    namespaces: str = ""
    metrics_port: int = 9090
    handler_backoff_seconds: float = 5.0
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    def namespace_list(self) -> list[str]:
        return [n.strip() for n in self.namespaces.split(",") if n.strip()]
