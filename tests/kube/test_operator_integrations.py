"""Integrations in the cluster: health probes into the Ready condition, runs reading Secrets,
and secrets kept out of every status, Event and log.

A real kube-apiserver; the operator runs as its own ServiceAccount under config/rbac; runner
Jobs run under the per-run access the operator grants (executor fixture). The outside system
is a loopback HTTP server that can echo the credential it receives back in its error bodies,
as some APIs do.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import urllib.parse
from collections.abc import Iterator
from typing import Any

import apiserver as kube
import executor as executor_mod
import httpserver
import httpx
import oauth_server
import objects
import operator_process
import pytest
from objects import condition, phase, step, wait_for
from test_oauth2 import TokenCheckingDropbox

from autoflow.crds import integration
from autoflow.runners.access import oauth2

SECRET = "s3cr3t-t0ken-4f9b2c71d0"
CHECKED = "autoflow.dev/check-requested-at"


def secret(name: str, **values: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()},
    }


def http_integration(server: httpserver.Server, name: str = "crm", **spec: Any) -> dict[str, Any]:
    settings = {"baseUrl": server.url("/"), "auth": "bearer", "healthPath": "/health"}
    return objects.integration(
        name, "http", settings=settings, secretRef={"name": f"{name}-creds"}, **spec
    )


def echoing_401(request: httpserver.Recorded) -> httpserver.Reply:
    """A remote that refuses the token and quotes it back, as some APIs do."""
    return httpserver.Reply.with_json(
        {"error": f"invalid token: {request.headers.get('authorization')}"}, status=401
    )


def ready_is(status: str, reason: str | None = None) -> Any:
    def check(obj: dict[str, Any]) -> bool:
        cond = condition(obj, "Ready")
        return cond.get("status") == status and reason in (None, cond.get("reason"))

    return check


def request_check(server: kube.APIServer, obj: dict[str, Any]) -> None:
    now = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=1)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    server.merge_patch(obj, {"metadata": {"annotations": {CHECKED: stamp}}})


@pytest.fixture
def remote() -> Iterator[httpserver.Server]:
    with httpserver.serve() as server:
        server.route("/health", httpserver.Reply.with_json({"ok": True}))
        yield server


def everything_in(server: kube.APIServer, namespace: str) -> str:
    """Every Autoflow object and Event in the namespace, as one text to search."""
    texts = []
    for kind in ("Integration", "Workflow", "WorkflowRun"):
        texts.append(
            json.dumps(server.request("GET", server.path(objects.API_VERSION, kind, namespace)))
        )
    texts.append(json.dumps(server.request("GET", f"/api/v1/namespaces/{namespace}/events")))
    return "\n".join(texts)


def test_the_ready_condition_follows_the_remote_system(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    remote: httpserver.Server,
) -> None:
    apiserver.create(secret("crm-creds", token=SECRET), namespace=namespace)
    intg = apiserver.create(http_integration(remote), namespace=namespace)

    healthy = wait_for(apiserver, intg, ready_is("True", "ProbeSucceeded"))
    status = healthy["status"]
    assert status["lastCheckTime"] and status["nextCheckTime"] > status["lastCheckTime"]
    assert status["consecutiveFailures"] == 0
    assert status["observedGeneration"] == healthy["metadata"]["generation"]
    assert remote.last("/health").headers["authorization"] == f"Bearer {SECRET}"

    # The remote starts refusing the token, quoting it back; a check is asked for.
    remote.route("/health", echoing_401)
    request_check(apiserver, intg)
    refused = wait_for(apiserver, intg, ready_is("False", "CredentialsRejected"))
    message = condition(refused, "Ready")["message"]
    assert "crm" in message and "401" in message
    assert refused["status"]["consecutiveFailures"] == 1
    (warning,) = objects.events_about(apiserver, namespace, "crm", "CredentialsRejected")
    assert warning["type"] == "Warning"

    # Failing probes back off: the next one is due about 15 s later, not at the interval.
    last = datetime.datetime.fromisoformat(refused["status"]["lastCheckTime"])
    upcoming = datetime.datetime.fromisoformat(refused["status"]["nextCheckTime"])
    assert 10 <= (upcoming - last).total_seconds() <= 20

    remote.route("/health", httpserver.Reply.with_json({"ok": True}))
    request_check(apiserver, refused)
    wait_for(apiserver, intg, ready_is("True", "ProbeSucceeded"))
    assert objects.events_about(apiserver, namespace, "crm", "Ready")

    assert SECRET not in everything_in(apiserver, namespace)
    assert SECRET not in operator.log_since(0)


def test_a_missing_secret_and_an_unknown_connector_type_are_named(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    remote: httpserver.Server,
) -> None:
    no_secret = apiserver.create(http_integration(remote, "erp"), namespace=namespace)
    unknown = apiserver.create(objects.integration("fax", "telefax"), namespace=namespace)

    missing = wait_for(apiserver, no_secret, ready_is("False"))
    cond = condition(missing, "Ready")
    assert cond["reason"] == "SecretMissing", cond
    assert "erp-creds" in cond["message"] and "erp" in cond["message"]

    odd = wait_for(apiserver, unknown, ready_is("False"))
    cond = condition(odd, "Ready")
    assert cond["reason"] == "UnknownConnectorType", cond
    assert "telefax" in cond["message"] and "http" in cond["message"]  # lists known types

    # Creating the Secret is picked up by the next (backed-off) probe, or at once on request.
    apiserver.create(secret("erp-creds", token=SECRET), namespace=namespace)
    request_check(apiserver, missing)
    wait_for(apiserver, no_secret, ready_is("True", "ProbeSucceeded"))


def test_health_checks_can_be_turned_off(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    remote: httpserver.Server,
) -> None:
    apiserver.create(secret("crm-creds", token=SECRET), namespace=namespace)
    intg = apiserver.create(
        http_integration(remote, healthCheck={"enabled": False}), namespace=namespace
    )
    off = wait_for(apiserver, intg, ready_is("Unknown", "HealthCheckDisabled"))
    assert off["status"]["observedGeneration"] == off["metadata"]["generation"]
    assert remote.calls("/health") == 0


def test_a_run_reads_its_integration_secret_and_the_secret_stays_out_of_everything(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    executor: executor_mod.NamespaceExecutor,
    remote: httpserver.Server,
) -> None:
    remote.route("/orders", httpserver.echo)
    remote.route("/refunds", echoing_401)
    apiserver.create(secret("crm-creds", token=SECRET), namespace=namespace)
    apiserver.create(secret("unrelated", token="not-for-runs-1234"), namespace=namespace)
    apiserver.create(http_integration(remote), namespace=namespace)
    steps = [
        {"id": "orders", "uses": "http.request", "integration": "crm", "with": {"url": "orders"}},
        {
            "id": "refund",
            "uses": "http.request",
            "integration": "crm",
            "with": {"url": "refunds", "method": "POST"},
        },
    ]
    apiserver.create(objects.workflow(steps=steps), namespace=namespace)
    run = apiserver.create(objects.run(), namespace=namespace)

    done = wait_for(apiserver, run, objects.finished)

    assert phase(done) == "Failed", done["status"]
    # The first step reached the remote with the token read from the Secret, through the
    # access the operator granted this run; what the remote echoed back is masked.
    assert remote.last("/orders").headers["authorization"] == f"Bearer {SECRET}"
    echoed = step(done, "orders")["output"]["body"]["headers"]["authorization"]
    assert echoed == "Bearer ***"
    refund = step(done, "refund")
    assert refund["phase"] == "Failed" and "401" in refund["message"]
    assert remote.last("/refunds").headers["authorization"] == f"Bearer {SECRET}"

    # The secret is nowhere a user or a log collector looks.
    assert SECRET not in everything_in(apiserver, namespace)
    assert SECRET not in executor.logs()
    assert SECRET not in operator.log_since(0)

    # The run's account may read exactly that Secret, not the namespace's others.
    role = apiserver.get(
        objects.ref("rbac.authorization.k8s.io/v1", "Role", "autoflow-run-orders-1", namespace)
    )
    granted = {tuple(r["resources"]): r.get("resourceNames") for r in role["rules"]}
    assert granted[("integrations",)] == ["crm"]
    assert granted[("secrets",)] == ["crm-creds"]


def test_a_step_whose_secret_lacks_the_key_fails_once_naming_secret_and_key(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    executor: executor_mod.NamespaceExecutor,
    remote: httpserver.Server,
) -> None:
    apiserver.create(secret("crm-creds", tokn=SECRET), namespace=namespace)  # a typo
    apiserver.create(http_integration(remote), namespace=namespace)
    steps = [
        {
            "id": "orders",
            "uses": "http.request",
            "integration": "crm",
            "retry": {"maxAttempts": 3, "initialDelay": "10ms"},
            "with": {"url": "orders"},
        }
    ]
    apiserver.create(objects.workflow(steps=steps), namespace=namespace)
    run = apiserver.create(objects.run(), namespace=namespace)

    done = wait_for(apiserver, run, objects.finished)

    assert phase(done) == "Failed"
    orders = step(done, "orders")
    assert orders["attempts"] == 1  # a missing key does not appear by trying again
    assert "integration 'crm': Secret 'crm-creds' has no key 'token'" in orders["message"]
    assert remote.calls("/orders") == 0
    assert SECRET not in everything_in(apiserver, namespace)


# -- OAuth2: the operator refreshes, runners read ----------------------------------------------


def authorized(auth: oauth_server.AuthServer) -> oauth2.Token:
    """Tokens from a real authorization-code exchange with the local provider, as
    `autoflow integrations authorize` obtains them (the redirect is read, not served)."""
    spec = integration.OAuth2(
        grant_type="authorization_code",
        token_url=auth.token_url,
        authorize_url=auth.authorize_url,
        client_id=oauth_server.CLIENT_ID,
    )
    redirect = "http://127.0.0.1:9/callback"
    verifier = oauth2.new_code_verifier()
    url = oauth2.authorization_url(spec, redirect, state="s-1", code_verifier=verifier)
    answer = httpx.get(url, follow_redirects=False, timeout=10)
    location = urllib.parse.urlsplit(answer.headers["location"])
    code = urllib.parse.parse_qs(location.query)["code"][0]
    return asyncio.run(
        oauth2.exchange_code(
            spec, oauth_server.CLIENT_SECRET, code, redirect, verifier, integration_name="files"
        )
    )


def test_the_operator_refreshes_oauth2_tokens_into_the_managed_secret_runs_use_them(
    apiserver: kube.APIServer,
    namespace: str,
    operator: operator_process.Operator,
    executor: executor_mod.NamespaceExecutor,
) -> None:
    with httpserver.serve() as server:
        auth = oauth_server.AuthServer(server, rotate_refresh_tokens=True, require_pkce=True)
        files = TokenCheckingDropbox(server, auth)
        files.add_file("/Invoices/2025-01.pdf")
        first = authorized(auth)
        assert first.refresh_token
        # The user's Secret: the client secret and the first tokens, already expired.
        stale = {**first.to_secret_data(), "expiresAt": "2020-01-01T00:00:00Z"}
        apiserver.create(
            secret("files-oauth", clientSecret=oauth_server.CLIENT_SECRET, **stale),
            namespace=namespace,
        )
        oauth = {
            "grantType": "authorization_code",
            "tokenUrl": auth.token_url,
            "authorizeUrl": auth.authorize_url,
            "clientId": oauth_server.CLIENT_ID,
            "tokenSecretName": "files-tokens",
        }
        intg = apiserver.create(
            objects.integration(
                "files",
                "dropbox",
                settings={"baseUrl": server.url("/2")},
                secretRef={"name": "files-oauth"},
                oauth2=oauth,
            ),
            namespace=namespace,
        )

        # The operator refreshed (rotating the refresh token) into a Secret of its own,
        # owned by the Integration, and probed Dropbox with the new access token.
        healthy = wait_for(apiserver, intg, ready_is("True", "ProbeSucceeded"))
        assert auth.grants == ["authorization_code", "refresh_token"]
        managed = apiserver.get(objects.ref("v1", "Secret", "files-tokens", namespace))
        tokens = {k: base64.b64decode(v).decode() for k, v in managed["data"].items()}
        assert auth.valid(tokens["accessToken"]) and tokens["accessToken"] != first.access_token
        assert tokens["refreshToken"] in auth.refresh_tokens
        assert first.refresh_token not in auth.refresh_tokens  # rotated: the old one is spent
        (owner,) = managed["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["name"]) == ("Integration", "files")
        expires = datetime.datetime.fromisoformat(healthy["status"]["tokenExpiresAt"])
        left = expires - datetime.datetime.now(datetime.UTC)
        assert 3000 < left.total_seconds() <= 3600

        # A run reads the refreshed token from the managed Secret (never refreshing itself).
        steps = [
            {
                "id": "list",
                "uses": "dropbox.list_folder",
                "integration": "files",
                "with": {"path": "/Invoices"},
            }
        ]
        apiserver.create(objects.workflow(steps=steps), namespace=namespace)
        run = apiserver.create(objects.run(), namespace=namespace)
        done = wait_for(apiserver, run, objects.finished)
        assert phase(done) == "Succeeded", done["status"]
        assert len(step(done, "list")["output"]["items"]) == 1
        assert auth.grants == ["authorization_code", "refresh_token"]
        assert files.violations == []

        # The provider revokes the grant: the next refresh fails, Ready says what to do.
        auth.revoke_refresh_tokens()
        auth.expire_access_tokens()
        expired = {"expiresAt": "2020-01-01T00:00:00Z"}
        apiserver.merge_patch(
            objects.ref("v1", "Secret", "files-tokens", namespace), {"stringData": expired}
        )
        request_check(apiserver, healthy)
        failed = wait_for(apiserver, intg, ready_is("False", "TokenRefreshFailed"))
        message = condition(failed, "Ready")["message"]
        assert "files" in message and "invalid_grant" in message and "authorize" in message
        assert objects.events_about(apiserver, namespace, "files", "TokenRefreshFailed")

        text = everything_in(apiserver, namespace) + operator.log_since(0) + executor.logs()
        for credential in (oauth_server.CLIENT_SECRET, first.access_token, tokens["accessToken"]):
            assert credential not in text
