"""Operator configuration: one pydantic settings object, read from ``AUTOFLOW_*`` variables.

- ``AUTOFLOW_RUNNER_IMAGE``: image of runner Jobs unless a Workflow sets ``runtime.image``
- ``AUTOFLOW_RUNNER_BACKOFF_LIMIT`` (3): pod retries of a runner Job; a retried pod resumes
- ``AUTOFLOW_JOB_TTL_SECONDS`` (3600): ``ttlSecondsAfterFinished`` of runner Jobs
- ``AUTOFLOW_NAMESPACES`` (all): comma-separated namespaces to watch
- ``AUTOFLOW_METRICS_PORT`` (9090): Prometheus metrics port
- ``AUTOFLOW_HANDLER_BACKOFF_SECONDS`` (5): wait before a failed reconcile is tried again
- ``AUTOFLOW_INTEGRATION_TICK_SECONDS`` (10): how often the operator looks whether an
  Integration's probe (or its OAuth2 token refresh) is due; probes run on their own interval
- ``AUTOFLOW_PROBE_TIMEOUT_SECONDS`` (10): a health probe that takes longer fails as Timeout
- ``AUTOFLOW_PROBE_CONCURRENCY`` (4): health probes in flight at once
- ``AUTOFLOW_REDIS_URL`` (none): Redis, without credentials, that runners share Integration
  rate limits and concurrency through; passed to runner Jobs (without Redis each runner
  limits on its own)
- ``AUTOFLOW_REDIS_SECRET`` (none): instead, the name of a Secret in the run's namespace
  whose key ``url`` holds the Redis URL (with its password); runner pods get it from the
  kubelet as ``AUTOFLOW_REDIS_URL``, so no credential is written into a Job
- ``AUTOFLOW_STORE_URL`` (none): the run store (docs/run-store.md) the operator archives
  finished runs into before their ``runHistory`` deletes them; with a store, a run is
  deleted only once it is archived. The chart and kustomize set it from a Secret
- ``AUTOFLOW_STORE_SECRET`` (none): the name of a Secret in the run's namespace whose key
  ``AUTOFLOW_STORE_SECRET_KEY`` (``url``) holds the store URL; runner pods get it from the
  kubelet as ``AUTOFLOW_STORE_URL`` and write full step payloads there (a store URL is
  never written into a Job)
- ``AUTOFLOW_STORE_SUBJECT_KEY`` (none): the key data subjects are hashed with (a Workflow's
  ``dataSubject``); the operator's archive needs it for such runs. The chart and kustomize
  set it from a Secret
- ``AUTOFLOW_STORE_SUBJECT_KEY_SECRET`` (none): the name of a Secret in the run's namespace
  whose key ``AUTOFLOW_STORE_SUBJECT_KEY_SECRET_KEY`` (``subjectKey``) holds that key; runner
  pods get it from the kubelet as ``AUTOFLOW_STORE_SUBJECT_KEY`` (optional, as the URL's)
- ``AUTOFLOW_STORE_RETENTION_DAYS`` (none: kept) and ``AUTOFLOW_STORE_RETENTION_MAX_RUNS``
  (none): the default retention of finished runs in the store, for workflows without
  ``spec.retention`` (the same variables as ``autoflow runs purge --expired``)
- ``AUTOFLOW_STORE_PURGE_INTERVAL_SECONDS`` (3600): how often the operator purges expired
  runs from the store (``operator.retention``; 0: never)
- ``AUTOFLOW_ARCHIVE_CONCURRENCY`` (4): finished runs archived into the store at once (at
  start-up an operator may find thousands not archived yet)
- ``AUTOFLOW_WEBHOOK_PORT`` (0: none): serve the validating admission webhook on this port
  (``operator.webhook``); the chart and kustomize set 9443
- ``AUTOFLOW_WEBHOOK_ADDRESS`` (0.0.0.0): the address it listens on
- ``AUTOFLOW_WEBHOOK_SERVICE`` (none): ``namespace/name`` of the Service the API server
  reaches it through (its port must be the webhook port); none: by URL, at
  ``AUTOFLOW_WEBHOOK_HOST`` (default: the listen address)
- ``AUTOFLOW_WEBHOOK_CONFIGURATION`` (autoflow-operator.autoflow.dev): the
  ValidatingWebhookConfiguration the operator creates and keeps up to date
- ``AUTOFLOW_WEBHOOK_FAILURE_POLICY`` (Ignore): Ignore or Fail, when the API server cannot
  reach the webhook
- ``AUTOFLOW_LOG_LEVEL`` (info): debug, info, warning or error; kopf's own logs show from
  warning up, or from debug up when this is debug

Runner pods run as a ServiceAccount the operator makes for each run (it may read that run
and write its status, nothing else), or as the Workflow's ``runtime.serviceAccountName``.
"""

from __future__ import annotations

from typing import Literal

import pydantic
import pydantic_settings


class Settings(pydantic_settings.BaseSettings):
    model_config = pydantic_settings.SettingsConfigDict(env_prefix="AUTOFLOW_")

    runner_image: str = "ghcr.io/autoflow/autoflow:0.1.0"
    runner_backoff_limit: int = 3
    job_ttl_seconds: int = 3600
    namespaces: str = ""
    metrics_port: int = 9090
    handler_backoff_seconds: float = 5.0
    integration_tick_seconds: float = 10.0
    probe_timeout_seconds: float = 10.0
    probe_concurrency: int = 4
    redis_url: str = ""
    redis_secret: str = ""
    store_url: str = ""
    store_secret: str = ""
    store_secret_key: str = "url"
    store_subject_key_secret: str = ""
    store_subject_key_secret_key: str = "subjectKey"
    store_retention_days: float | None = pydantic.Field(default=None, gt=0)
    store_retention_max_runs: int | None = pydantic.Field(default=None, ge=1)
    store_purge_interval_seconds: float = pydantic.Field(default=3600.0, ge=0)
    # pool-mode Workflows' status counters from the store (operator/pool_status.py); 0: off
    store_status_interval_seconds: float = pydantic.Field(default=30.0, ge=0)
    archive_concurrency: int = pydantic.Field(default=4, ge=1)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    webhook_port: int = 0
    webhook_address: str = "0.0.0.0"
    webhook_service: str = ""
    webhook_host: str = ""
    webhook_configuration: str = "autoflow-operator.autoflow.dev"
    webhook_failure_policy: Literal["Ignore", "Fail"] = "Ignore"

    def webhook_service_ref(self) -> tuple[str, str] | None:
        """(namespace, name) of ``webhook_service``, or None."""
        if not self.webhook_service:
            return None
        namespace, sep, name = self.webhook_service.partition("/")
        if not sep or not namespace or not name:
            raise ValueError(
                f"AUTOFLOW_WEBHOOK_SERVICE must be namespace/name, not {self.webhook_service!r}"
            )
        return namespace, name

    def namespace_list(self) -> list[str]:
        return [n.strip() for n in self.namespaces.split(",") if n.strip()]
