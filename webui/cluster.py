"""The cluster backend: Autoflow's resources in Kubernetes, every call made as the signed-in
person, so Kubernetes RBAC decides what each person may see and do.

    request (Person: user, groups) ─ kube.Client.impersonating(user, groups)
        ─ Impersonate-User / Impersonate-Group on every call ─► the API server authorises
          it as that person (the webui's ServiceAccount holds only ``impersonate``)

Workflows, Integrations, Schedules are read and written as resources; a Workflow's YAML
text is kept exactly as saved in its ``autoflow.dev/source`` annotation (shown while the
spec still matches it, else the object is shown as YAML), and ``autoflow.dev/changed-by``
names who saved it last (the Kubernetes audit log has the rest). A run is started by
creating a WorkflowRun as the person (the operator records who started it from the
``autoflow.dev/started-by`` annotation and the audit log); cancelling sets ``spec.cancel``;
a retry from the failed step is a new WorkflowRun whose ``spec.retryOf`` names the failed
run in the store, and its runner reuses that run's succeeded steps (``runners.job.retry``).
Run history comes from the run store, shown to whoever may list the namespace's
WorkflowRuns (a SelfSubjectAccessReview made as that person); runs not yet archived come
from the WorkflowRuns themselves. Live status is a watch of the namespace's WorkflowRuns
made as the person, each step transition an event whose id is derived from the object's
resourceVersion (``Last-Event-ID`` resumes the watch from there).

The webui never reads a Secret's values to show them: secret values go into Secrets
(write-only) and only their key names come back.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
from collections.abc import AsyncIterator, Mapping
from typing import Any

import yaml

from autoflow.crds import errors, integration, meta, workflow
from autoflow.runners import engine, kube
from autoflow.runners import store as store_mod
from autoflow.runners.access import integrations as access
from autoflow.runners.access import probe, redact
from autoflow.runners.definitions import documents, loader, plan
from autoflow.runners.definitions import inputs as inputs_mod
from autoflow.webui import backend

STARTED_BY = "autoflow.dev/started-by"
CLIENTS = 64  # impersonating clients kept (one per person recently seen)
EVENTS_PER_VERSION = 1000  # event id = resourceVersion * this + index within the change


def _ts(value: Any) -> float | None:
    if not value:
        return None
    with contextlib.suppress(ValueError):
        return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    return None


def _ready(obj: Mapping[str, Any]) -> dict[str, Any] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return {
                "status": c.get("status", "Unknown"),
                "reason": c.get("reason", ""),
                "message": c.get("message", ""),
            }
    return None


class _Secrets:
    def __init__(self, data: Mapping[str, str], redactor: redact.Redactor) -> None:
        self.data, self.redactor = data, redactor

    def get(self, key: str) -> str:
        if key not in self.data:
            raise errors.MissingSecretError(f"the Secret has no key {key!r}")
        self.redactor.add(self.data[key])
        return self.data[key]


class ClusterBackend(backend.Backend):
    mode = "cluster"

    def __init__(
        self,
        client: kube.Client,
        store: store_mod.Store,
        *,
        namespaces: list[str] | None = None,
    ) -> None:
        self.client = client  # the webui's own identity: used only to impersonate
        self.store = store
        self.views = backend.StoreViews(store)
        self.configured_namespaces = namespaces
        self._clients: collections.OrderedDict[tuple[str, tuple[str, ...]], kube.Client] = (
            collections.OrderedDict()
        )
        self._retired: list[kube.Client] = []

    def as_person(self, person: backend.Person) -> kube.Client:
        key = (person.user, person.groups)
        found = self._clients.get(key)
        if found is None:
            found = self.client.impersonating(person.user, person.groups)
            self._clients[key] = found
            if len(self._clients) > CLIENTS:
                _, old = self._clients.popitem(last=False)
                # Closed later by aclose if still referenced by a request in flight.
                self._retired.append(old)
        self._clients.move_to_end(key)
        return found

    async def aclose(self) -> None:
        for c in [*self._clients.values(), *self._retired]:
            await c.aclose()
        self._clients.clear()
        await self.store.aclose()

    async def _allowed(
        self, person: backend.Person, namespace: str, verb: str, resource: str
    ) -> bool:
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SelfSubjectAccessReview",
            "spec": {
                "resourceAttributes": {
                    "namespace": namespace,
                    "verb": verb,
                    "group": meta.GROUP,
                    "resource": resource,
                }
            },
        }
        path = kube.path(("authorization.k8s.io", "v1"), "selfsubjectaccessreviews")
        answer = await self.as_person(person).create(path, review)
        return bool((answer.get("status") or {}).get("allowed"))

    # -- namespaces, workflows ---------------------------------------------------------------

    async def namespaces(self, person: backend.Person) -> list[str]:
        if self.configured_namespaces is not None:
            candidates = list(self.configured_namespaces)
        else:
            try:
                found = await self.as_person(person).list(kube.path(kube.CORE, "namespaces"))
            except kube.Forbidden:
                return []
            candidates = [str(n["metadata"]["name"]) for n in found]
        return [ns for ns in candidates if await self._allowed(person, ns, "list", "workflows")]

    def _workflow_view(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        md = obj.get("metadata") or {}
        annotations = md.get("annotations") or {}
        spec = obj.get("spec") or {}
        text = annotations.get(backend.SOURCE)
        if text is not None:
            try:
                docs = documents.parse(text, "<source>")
                if len(docs) != 1 or docs[0].data.get("spec") != spec:
                    text = None  # changed elsewhere (kubectl, GitOps): show the object
            except errors.AutoflowError:
                text = None
        if text is None:
            shown_md: dict[str, Any] = {"name": md.get("name")}
            kept = {k: v for k, v in annotations.items() if not k.startswith("autoflow.dev/")}
            kept = {k: v for k, v in kept.items() if "last-applied" not in k}
            if md.get("labels"):
                shown_md["labels"] = md["labels"]
            if kept:
                shown_md["annotations"] = kept
            manifest = {
                "apiVersion": obj.get("apiVersion"),
                "kind": "Workflow",
                "metadata": shown_md,
                "spec": spec,
            }
            text = yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True)
        return {
            "name": md.get("name"),
            "namespace": md.get("namespace"),
            "yaml": text,
            "resourceVersion": md.get("resourceVersion", ""),
            "ready": _ready(obj),
            "spec": spec,
            "changedBy": annotations.get(backend.CHANGED_BY),
        }

    async def list_workflows(self, person: backend.Person, namespace: str) -> list[dict[str, Any]]:
        found = await self.as_person(person).list(kube.paths.workflow(namespace))
        names = [str(o["metadata"]["name"]) for o in found]
        runs = await self.views.workflow_runs(namespace, names)
        items = []
        for obj in found:
            md, spec = obj["metadata"], obj.get("spec") or {}
            items.append(
                {
                    "name": md["name"],
                    "namespace": namespace,
                    "description": str(spec.get("description") or ""),
                    "ready": _ready(obj),
                    "triggers": spec.get("triggers") or [],
                    "resourceVersion": md.get("resourceVersion", ""),
                    **runs[md["name"]],
                }
            )
        return items

    async def workflow_names(self, person: backend.Person, namespace: str) -> list[str]:
        found = await self.as_person(person).list(kube.paths.workflow(namespace))
        return [str(o["metadata"]["name"]) for o in found]

    async def get_workflow(
        self, person: backend.Person, namespace: str, name: str
    ) -> dict[str, Any]:
        obj = await self.as_person(person).get(kube.paths.workflow(namespace, name))
        return self._workflow_view(obj)

    async def save_workflow(
        self,
        person: backend.Person,
        namespace: str,
        name: str,
        text: str,
        *,
        create: bool,
        if_match: str | None = None,
    ) -> dict[str, Any]:
        data = documents.parse(text, "<workflow>")[0].data
        body = dict(data)
        md = dict(body.get("metadata") or {})
        md["namespace"] = namespace
        md["annotations"] = {
            **(md.get("annotations") or {}),
            backend.SOURCE: text,
            backend.CHANGED_BY: person.user,
        }
        body["metadata"] = md
        client = self.as_person(person)
        if create:
            obj = await client.create(kube.paths.workflow(namespace), body)
        else:
            if if_match is None:
                current = await client.get(kube.paths.workflow(namespace, name))
                if_match = current["metadata"]["resourceVersion"]
            md["resourceVersion"] = if_match
            try:
                obj = await client.replace(kube.paths.workflow(namespace, name), body)
            except kube.Conflict as exc:
                raise backend.conflict(
                    "Workflow", name, "changed since it was read; reload and edit again"
                ) from exc
        return self._workflow_view(obj)

    async def delete_workflow(self, person: backend.Person, namespace: str, name: str) -> None:
        await self.as_person(person).delete(kube.paths.workflow(namespace, name))

    async def integration_types(
        self, person: backend.Person, namespace: str
    ) -> dict[str, str | None] | None:
        try:
            found = await self.as_person(person).list(kube.paths.integration(namespace))
        except kube.Forbidden:
            return None  # cannot tell which exist: not a problem of the text
        return {str(o["metadata"]["name"]): (o.get("spec") or {}).get("type") for o in found}

    # -- runs ----------------------------------------------------------------------------------

    async def check_runs_access(self, person: backend.Person, namespace: str, verb: str) -> None:
        if not await self._allowed(person, namespace, verb, "workflowruns"):
            raise kube.Forbidden(
                403,
                "Forbidden",
                f'workflowruns.{meta.GROUP} is forbidden: User "{person.user}" cannot {verb} '
                f'resource "workflowruns" in API group "{meta.GROUP}" in the namespace '
                f'"{namespace}"',
            )

    async def start_run(
        self,
        person: backend.Person,
        namespace: str,
        workflow: str,
        inputs: Mapping[str, Any],
        *,
        trigger: str = "api",
    ) -> str:
        body = {
            "apiVersion": meta.API_VERSION,
            "kind": "WorkflowRun",
            "metadata": {
                "generateName": f"{workflow[:50]}-",
                "namespace": namespace,
                "annotations": {STARTED_BY: person.user},
            },
            "spec": {"workflowRef": {"name": workflow}, "inputs": dict(inputs)},
        }
        client = self.as_person(person)
        await client.get(kube.paths.workflow(namespace, workflow))  # 404 names the Workflow
        obj = await client.create(kube.paths.run(namespace), body)
        return str(obj["metadata"]["name"])

    async def cancel_run(self, person: backend.Person, namespace: str, run_id: str) -> None:
        await self.as_person(person).patch(
            kube.paths.run(namespace, run_id), {"spec": {"cancel": True}}
        )

    async def retry_run(self, person: backend.Person, namespace: str, run_id: str) -> str:
        """A new WorkflowRun with ``spec.retryOf`` naming the failed run in the store (its
        WorkflowRun's uid), created as the person; its runner reuses the succeeded steps.
        ``run_id`` is the WorkflowRun's name while it exists, else its id in the store."""
        client = self.as_person(person)
        live = await client.get_or_none(kube.paths.run(namespace, run_id))
        stored_id = str(live["metadata"]["uid"]) if live is not None else run_id
        try:
            detail, _ = await self.views.retry_source(namespace, stored_id)
        except kube.NotFound:
            if live is None:
                raise
            raise backend.conflict(
                "run",
                run_id,
                "is not in the run store yet (a finished run is archived when "
                "its runner stops): retry it in a moment",
            ) from None
        name = detail.summary.workflow
        obj = await client.get(kube.paths.workflow(namespace, name))  # 404 names the Workflow
        current = _spec_hash(namespace, name, obj.get("spec") or {})
        if current != detail.summary.spec_hash:
            raise backend.conflict(
                "run",
                run_id,
                "ran an earlier version of the Workflow; its steps' outputs "
                "cannot be reused: rerun it instead",
            )
        given = dict(((live or {}).get("spec") or {}).get("inputs") or detail.inputs or {})
        if any(inputs_mod.is_redacted(v) for v in given.values()):
            raise backend.conflict(
                "run", run_id, "had secret inputs, which are not kept: start a new run instead"
            )
        body = {
            "apiVersion": meta.API_VERSION,
            "kind": "WorkflowRun",
            "metadata": {
                "generateName": f"{name[:50]}-",
                "namespace": namespace,
                "annotations": {STARTED_BY: person.user},
            },
            "spec": {"workflowRef": {"name": name}, "inputs": given, "retryOf": stored_id},
        }
        made = await client.create(kube.paths.run(namespace), body)
        return str(made["metadata"]["name"])

    async def run_detail(
        self, person: backend.Person, namespace: str, run_id: str
    ) -> dict[str, Any]:
        await self.check_runs_access(person, namespace, "get")
        try:
            return backend.detail_json(await self.views.run_detail(namespace, run_id))
        except kube.NotFound:
            live = await self.live_run(person, namespace, run_id)
            if live is None:
                raise
            return live

    async def runs_page(
        self,
        person: backend.Person,
        namespace: str,
        query: backend.RunQuery,
        *,
        limit: int,
        cursor: str | None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The store's page; the first page also shows WorkflowRuns the store has not got
        yet (a Job-mode run is archived when it finishes)."""
        items, nxt = await super().runs_page(person, namespace, query, limit=limit, cursor=cursor)
        if cursor is not None:
            return items, nxt
        stored = {i["runId"] for i in items}
        # The store names a Job-mode run by its WorkflowRun's uid (what the runner and the
        # archive record), the live list by name: one archived run whose CR is still there
        # is one row, not two.
        objs = await self.as_person(person).list(kube.paths.run(namespace))
        live = [run_json(o) for o in objs if o["metadata"].get("uid") not in stored]
        extra = [
            r
            for r in live
            if r["runId"] not in stored
            and (not query.workflow or r["workflow"] == query.workflow)
            and (not query.phase or r["phase"] == query.phase)
            and (query.since is None or r["startedAt"] >= query.since)
            and (query.until is None or r["startedAt"] < query.until)
        ]
        for r in extra:
            r.pop("inputs"), r.pop("outputs"), r.pop("steps")
        merged = sorted(extra + items, key=lambda r: r["startedAt"], reverse=True)
        return merged, nxt

    async def live_run(
        self, person: backend.Person, namespace: str, run_id: str
    ) -> dict[str, Any] | None:
        """A WorkflowRun not (yet) in the store, in the API's run-detail shape."""
        obj = await self.as_person(person).get_or_none(kube.paths.run(namespace, run_id))
        return None if obj is None else run_json(obj)

    async def events(
        self, person: backend.Person, namespace: str, run_id: str | None, after: int | None
    ) -> AsyncIterator[dict[str, Any]]:
        client = self.as_person(person)
        url = kube.paths.run(namespace)
        listing: dict[str, Any] = {}
        if after is not None and after // EVENTS_PER_VERSION > 1:
            # The runs as they were just before the last event seen: the watch from there
            # replays every change after it (within etcd's compaction window).
            version = str(after // EVENTS_PER_VERSION - 1)
            with contextlib.suppress(kube.Gone, kube.Invalid):
                listing = await client.request(
                    "GET", f"{url}?resourceVersion={version}&resourceVersionMatch=Exact"
                )
        if not listing:
            listing = await client.request("GET", url)
        known = {o["metadata"]["name"]: _phases(o) for o in listing.get("items", [])}
        version = str(listing["metadata"]["resourceVersion"])
        while True:
            async for kind, obj in client.watch(url, resource_version=version):
                if kind == "ERROR":
                    version = str(listing["metadata"]["resourceVersion"])
                    break
                md = obj["metadata"]
                version = md["resourceVersion"]
                name = md["name"]
                if run_id is not None and name != run_id:
                    continue
                before = known.get(name, {})
                now = _phases(obj)
                known[name] = now
                base = {
                    "runId": name,
                    "namespace": namespace,
                    "workflow": (obj.get("spec") or {}).get("workflowRef", {}).get("name"),
                }
                index = 0
                for key, phase in now.items():
                    if before.get(key) == phase:
                        continue
                    event_id = int(version) * EVENTS_PER_VERSION + index
                    index += 1
                    if after is not None and event_id <= after:
                        continue
                    if key == "":
                        kind_ = "end" if phase in ("Succeeded", "Failed", "Cancelled") else "run"
                        yield {**base, "id": event_id, "kind": kind_, "phase": phase}
                    else:
                        yield {**base, "id": event_id, "kind": "step", "step": key, "phase": phase}

    # -- integrations, schedules -------------------------------------------------------------

    async def _secret_keys(self, client: kube.Client, namespace: str, obj: Any) -> list[str]:
        ref = ((obj.get("spec") or {}).get("secretRef") or {}).get("name")
        if not ref:
            return []
        try:
            secret = await client.get(kube.paths.secret(namespace, ref))
        except (kube.Forbidden, kube.NotFound):
            return []
        return sorted((secret.get("data") or {}).keys())

    async def _integration_view(
        self, client: kube.Client, namespace: str, obj: Any
    ) -> dict[str, Any]:
        ready = _ready(obj)
        status = obj.get("status") or {}
        health = None
        if ready is not None:
            health = {
                "ready": ready["status"] == "True",
                "reason": ready["reason"],
                "message": ready["message"],
                "checkedAt": _ts(status.get("lastCheckTime")),
            }
        spec = obj.get("spec") or {}
        return {
            "name": obj["metadata"]["name"],
            "namespace": namespace,
            "type": spec.get("type"),
            "spec": spec,
            "secretKeys": await self._secret_keys(client, namespace, obj),
            "health": health,
            "resourceVersion": obj["metadata"].get("resourceVersion"),
        }

    async def list_integrations(
        self, person: backend.Person, namespace: str
    ) -> list[dict[str, Any]]:
        client = self.as_person(person)
        found = await client.list(kube.paths.integration(namespace))
        return [await self._integration_view(client, namespace, o) for o in found]

    async def save_integration(
        self,
        person: backend.Person,
        namespace: str,
        name: str,
        spec: Mapping[str, Any],
        secrets: Mapping[str, str],
        *,
        create: bool,
    ) -> dict[str, Any]:
        client = self.as_person(person)
        body_spec = dict(spec)
        if secrets and not (body_spec.get("secretRef") or {}).get("name"):
            body_spec["secretRef"] = {"name": f"{name}-credentials"}
        body: dict[str, Any] = {
            "apiVersion": meta.API_VERSION,
            "kind": "Integration",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "annotations": {backend.CHANGED_BY: person.user},
            },
            "spec": body_spec,
        }
        loader.to_resource(body, errors.Where(resource=f"Integration/{name}"))
        if create:
            obj = await client.create(kube.paths.integration(namespace), body)
        else:
            current = await client.get(kube.paths.integration(namespace, name))
            body["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
            obj = await client.replace(kube.paths.integration(namespace, name), body)
        if secrets:
            secret_name = body_spec["secretRef"]["name"]
            secret = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": secret_name, "namespace": namespace},
                "type": "Opaque",
                "stringData": {k: str(v) for k, v in secrets.items()},
            }
            try:
                await client.create(kube.paths.secret(namespace), secret)
            except kube.Conflict:
                await client.patch(
                    kube.paths.secret(namespace, secret_name),
                    {"stringData": secret["stringData"]},
                )
        return await self._integration_view(client, namespace, obj)

    async def _secret_data(
        self, client: kube.Client, namespace: str, intg: integration.Integration
    ) -> dict[str, str]:
        import base64

        ref = intg.spec.secret_ref
        if ref is None:
            return {}
        secret = await client.get(kube.paths.secret(namespace, ref.name))
        return {
            k: base64.b64decode(v).decode("utf-8", "replace")
            for k, v in (secret.get("data") or {}).items()
        }

    async def _model(self, client: kube.Client, namespace: str, name: str) -> Any:
        obj = await client.get(kube.paths.integration(namespace, name))
        return loader.to_resource(
            {k: v for k, v in obj.items() if k != "status"},
            errors.Where(resource=f"Integration/{name}"),
        )

    async def test_integration(
        self, person: backend.Person, namespace: str, name: str
    ) -> dict[str, Any]:
        import time

        client = self.as_person(person)
        intg = await self._model(client, namespace, name)
        redactor = redact.Redactor()
        try:
            data = await self._secret_data(client, namespace, intg)
            for value in data.values():
                redactor.add(value)
            info = access.info_for(intg, _Secrets(data, redactor))
            verdict = await probe.check(info, redactor)
        except errors.AutoflowError as exc:
            if isinstance(exc, kube.Forbidden):
                raise
            verdict = probe.failed(name, exc, redactor)
        return {
            "ready": verdict.ready,
            "reason": verdict.reason,
            "message": verdict.message,
            "checkedAt": time.time(),
        }

    async def oauth_integration(
        self, person: backend.Person, namespace: str, name: str
    ) -> tuple[integration.Integration, str]:
        client = self.as_person(person)
        intg = await self._model(client, namespace, name)
        if intg.spec.oauth2 is None:
            raise errors.ManifestError(
                "the Integration has no spec.oauth2 to connect",
                errors.Where(resource=f"Integration/{name}", field="spec.oauth2"),
            )
        data = await self._secret_data(client, namespace, intg)
        return intg, data.get("clientSecret", "")

    async def store_token(
        self, person: backend.Person, namespace: str, name: str, token: Mapping[str, str]
    ) -> None:
        client = self.as_person(person)
        intg = await self._model(client, namespace, name)
        target = (intg.spec.oauth2 and intg.spec.oauth2.token_secret_name) or (
            intg.spec.secret_ref.name if intg.spec.secret_ref else f"{name}-credentials"
        )
        await client.patch(kube.paths.secret(namespace, target), {"stringData": dict(token)})

    async def list_schedules(self, person: backend.Person, namespace: str) -> list[dict[str, Any]]:
        found = await self.as_person(person).list(kube.path(kube.AUTOFLOW, "schedules", namespace))
        return [
            backend.schedule_view(
                o["metadata"]["name"], namespace, o.get("spec") or {}, o.get("status")
            )
            for o in found
        ]

    async def suspend_schedule(
        self, person: backend.Person, namespace: str, name: str, suspend: bool
    ) -> dict[str, Any]:
        # A merge patch of one field, as the person: RBAC needs "patch schedules"; the
        # operator sees the change like any kubectl patch.
        obj = await self.as_person(person).patch(
            kube.path(kube.AUTOFLOW, "schedules", namespace, name),
            {
                "metadata": {"annotations": {backend.CHANGED_BY: person.user}},
                "spec": {"suspend": suspend},
            },
        )
        return backend.schedule_view(name, namespace, obj.get("spec") or {}, obj.get("status"))


def _spec_hash(namespace: str, name: str, spec: Mapping[str, Any]) -> str:
    """The hash a run of this Workflow spec records (as the Job runner computes it)."""
    wf = workflow.Workflow.model_validate(
        {"kind": "Workflow", "metadata": {"name": name, "namespace": namespace}, "spec": spec}
    )
    return engine.spec_hash(plan.compile_workflow(wf))


def _phases(obj: Mapping[str, Any]) -> dict[str, str]:
    """The run's phase (key "") and each step's, from a WorkflowRun's status."""
    status = obj.get("status") or {}
    out = {"": str(status.get("phase") or "Pending")}
    for step in status.get("steps") or []:
        out[str(step.get("id"))] = str(step.get("phase"))
    return out


def run_json(obj: Mapping[str, Any]) -> dict[str, Any]:
    md, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    started = _ts(status.get("startedAt")) or _ts(md.get("creationTimestamp")) or 0.0
    finished = _ts(status.get("finishedAt"))
    result = status.get("result") or {}
    steps = []
    for s in status.get("steps") or []:
        a, b = _ts(s.get("startedAt")), _ts(s.get("finishedAt"))
        steps.append(
            {
                "step": s.get("id"),
                "phase": s.get("phase"),
                "attempts": s.get("attempts", 0),
                "startedAt": a,
                "finishedAt": b,
                "durationMs": None if a is None or b is None else round((b - a) * 1000, 3),
                "output": s.get("output"),
                "error": None,
                "message": s.get("message", ""),
            }
        )
    return {
        "runId": md["name"],
        "workflow": (spec.get("workflowRef") or {}).get("name", ""),
        "namespace": md.get("namespace", ""),
        "phase": status.get("phase") or "Pending",
        "trigger": "manual",
        "startedBy": (md.get("annotations") or {}).get(STARTED_BY, ""),
        "startedAt": started,
        "finishedAt": finished,
        "durationMs": None if finished is None else round((finished - started) * 1000, 3),
        "error": result.get("error") or None,
        "inputs": spec.get("inputs"),
        "outputs": status.get("outputs"),
        "steps": steps,
    }
