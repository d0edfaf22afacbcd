"""What an Integration of each connector type holds (``sdk.Connector.integration_form``) is
what the connector really reads: the reference page and the web UI's form are made from the
declaration, so a secret key read but not declared would be one nobody is told to set.

Each connector's health probe runs with every secret key answering "missing" and recording
that it was asked; the probes then fail against a closed port. What was asked must be
declared. Settings the connector validates must be in its declared model.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from autoflow.connectors import registry, sdk
from autoflow.crds import errors
from autoflow.runners.access import probe, redact


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Asked:
    """Secrets that have no value and remember every key asked for."""

    def __init__(self) -> None:
        self.keys: set[str] = set()

    def get(self, key: str) -> str:
        self.keys.add(key)
        raise errors.MissingSecretError(f"no {key}")


PORT = closed_port()
CASES: list[tuple[str, dict[str, Any]]] = [
    ("postgres", {"host": "127.0.0.1", "port": PORT}),
    ("postgres", {}),  # without a host: the dsn
    ("redis", {"host": "127.0.0.1", "port": PORT}),
    ("redis", {}),  # without a host: the url
    ("nats", {"servers": [f"nats://127.0.0.1:{PORT}"]}),
    ("email", {"host": "127.0.0.1", "port": PORT}),
    ("slack", {"baseUrl": f"http://127.0.0.1:{PORT}/api/"}),
    *[
        ("http", {"baseUrl": f"http://127.0.0.1:{PORT}/", "auth": auth, "headerName": "X-Key"})
        for auth in ("none", "bearer", "oauth2", "basic", "header")
    ],
    ("http", {"baseUrl": f"http://127.0.0.1:{PORT}/", "auth": "query", "queryName": "key"}),
]


@pytest.mark.parametrize(("type_", "settings"), CASES)
async def test_a_connector_reads_only_the_secret_keys_it_declares(
    type_: str, settings: dict[str, Any]
) -> None:
    connector = registry.default().connector(type_)
    asked = Asked()
    info = sdk.IntegrationInfo("it", type_, settings, asked)

    health = await probe.check(info, redact.Redactor(), timeout=5)

    assert not health.ready or health.reason == "NotProbed"
    assert asked.keys <= set(connector.secret_keys), (asked.keys, connector.secret_keys)
    if connector.settings_model is not None:
        connector.settings_model.model_validate(settings)  # the settings used are declared


def test_every_connector_that_takes_an_integration_says_what_it_holds() -> None:
    reg = registry.default()
    for name in reg.names():
        connector = reg.connector(name)
        if name == "core":
            continue  # no step of core names an Integration
        assert connector.secret_keys or connector.settings_schema().get("properties"), name


def test_a_declarative_connector_declares_the_keys_its_auth_scheme_reads() -> None:
    github = registry.default().connector("github")
    assert list(github.secret_keys) == ["token"]
    jira = registry.default().connector("jira")
    assert sorted(jira.secret_keys) == ["apiToken", "email"]
    props = jira.settings_schema()["properties"]
    assert "baseUrl" in props and len(props) > 1  # Jira's site is a setting
