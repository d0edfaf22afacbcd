"""The workspace backend: a directory of YAML files, the SQLite run store, runs in this process.

This is ``autoflow serve DIR`` and ``autoflow webui --dir DIR``: no cluster, one namespace
(``default``), one person (whoever holds the access token)::

    DIR/<name>.yaml                    a Workflow per file, the text exactly as saved
    DIR/<name>.integration.yaml        an Integration (any *.yaml of kind Integration counts)
    DIR/<name>.schedule.yaml           a Schedule (listed; fired by ``autoflow serve``)
    DIR/.autoflow/secrets.yaml         Integration credentials (mode 0600), never returned
    DIR/.autoflow/runs.db              the run store (SQLite)

A file's ``resourceVersion`` is a hash of its bytes: an update naming another one is refused
with 409, so two editors (or an editor and a text editor on the file) cannot overwrite each
other silently. Runs go through ``runners.pool``'s ``InProcessLauncher`` (``autoflow serve``
passes its own) and publish their step transitions to ``runners.pool.events.RunEvents`` for
the SSE streams; a retry records the reused steps as the new run's own.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import pathlib
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import yaml

from autoflow.crds import errors, integration, schedule, workflow
from autoflow.runners import kube
from autoflow.runners import store as store_mod
from autoflow.runners.access import integrations as access
from autoflow.runners.access import probe, redact
from autoflow.runners.definitions import documents, loader
from autoflow.runners.local import run as local
from autoflow.runners.pool import RunRequest, inprocess
from autoflow.runners.pool import events as events_mod
from autoflow.webui import backend, texts

NAMESPACE = "default"
STATE_DIR = ".autoflow"


def version_of(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:20]


def set_spec_field(text: str, root: yaml.Node | None, key: str, value: str) -> str:
    """``text`` with ``spec.<key>`` of the document ``root`` set to the YAML scalar ``value``,
    every other byte as it was (comments, order, quoting): the value is replaced where it
    stands, or the key is added as the spec's first entry, in its style and indentation."""
    spec = _child(root, "spec")
    if not isinstance(spec, yaml.MappingNode):
        raise errors.ValidationError(
            [errors.Problem("has no spec mapping", errors.Where(field="spec"))]
        )
    for key_node, value_node in spec.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            start, end = value_node.start_mark.index, value_node.end_mark.index
            return text[:start] + value + text[end:]
    if spec.flow_style or not spec.value:  # {a: 1} → {suspend: true, a: 1}
        at = spec.start_mark.index + 1
        sep = ", " if spec.value else ""
        return text[:at] + f"{key}: {value}{sep}" + text[at:]
    first = spec.value[0][0].start_mark
    line_start = text.rfind("\n", 0, first.index) + 1
    indent = text[line_start : first.index]
    if indent.strip():  # the first key shares its line with something else
        return text[: first.index] + f"{key}: {value}\n{' ' * first.column}" + text[first.index :]
    return text[:line_start] + f"{indent}{key}: {value}\n" + text[line_start:]


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
                found: yaml.Node = value_node
                return found
    return None


class _File:
    __slots__ = ("data", "kind", "name", "path", "raw", "single")

    def __init__(
        self, path: pathlib.Path, raw: bytes, kind: str, name: str, data: Any, single: bool
    ) -> None:
        self.path, self.raw, self.kind, self.name, self.data = path, raw, kind, name, data
        self.single = single


class WorkspaceBackend(backend.Backend):
    mode = "workspace"

    def __init__(
        self,
        directory: str | os.PathLike[str],
        store: store_mod.Store,
        *,
        user: str | None = None,
        launcher: inprocess.InProcessLauncher | None = None,
        events: events_mod.RunEvents | None = None,
        on_change: Callable[[], object] | None = None,
    ) -> None:
        self.dir = pathlib.Path(directory)
        # Under ``autoflow serve`` the launcher reads the folder through its own Workspace,
        # which polls: this tells it at once that a file was written (a Workflow saved and
        # run straight away runs what was saved) or that a run is about to start.
        self._on_change = on_change
        self.state = self.dir / STATE_DIR
        self.state.mkdir(parents=True, exist_ok=True)
        self.store = store
        self.views = backend.StoreViews(store)
        self.user = user or os.environ.get("USER") or "workspace"
        self.events_hub = events or events_mod.RunEvents()
        self.launcher = launcher or inprocess.InProcessLauncher(
            store, self._workflow_model, self._integration_provider, hub=self.events_hub
        )
        self._health: dict[str, dict[str, Any]] = {}
        self._checked: dict[tuple[pathlib.Path, str], dict[str, Any]] = {}
        self._lock = asyncio.Lock()
        self._cache: dict[pathlib.Path, tuple[float, int, list[_File]]] = {}

    @classmethod
    async def open(cls, directory: str | os.PathLike[str], **kwargs: Any) -> WorkspaceBackend:
        state = pathlib.Path(directory) / STATE_DIR
        state.mkdir(parents=True, exist_ok=True)
        store = await store_mod.open_store(
            f"sqlite:///{(state / 'runs.db').resolve()}", subject_key=store_mod.workspace_key(state)
        )
        made = cls(directory, store, **kwargs)
        if "launcher" not in kwargs:  # ours: it resumes the runs a stopped process left
            await made.launcher.start()
        return made

    async def aclose(self) -> None:
        await self.launcher.aclose()
        await self.store.aclose()

    # -- the directory ---------------------------------------------------------------------

    def _files(self) -> list[_File]:
        found: list[_File] = []
        for path in sorted([*self.dir.glob("*.yaml"), *self.dir.glob("*.yml")]):
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            cached = self._cache.get(path)
            if cached is not None and cached[:2] == (stat.st_mtime, stat.st_size):
                found += cached[2]
                continue
            raw = path.read_bytes()
            parsed: list[_File] = []
            try:
                docs = documents.parse(raw.decode("utf-8"), path.name)
            except (errors.AutoflowError, UnicodeDecodeError):
                docs = []  # a broken file is not a resource; its own editor shows why
            for doc in docs:
                data = doc.data if isinstance(doc.data, dict) else {}
                meta = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
                assert isinstance(meta, dict)
                if isinstance(data.get("kind"), str) and isinstance(meta.get("name"), str):
                    parsed.append(
                        _File(path, raw, data["kind"], meta["name"], data, len(docs) == 1)
                    )
            self._cache[path] = (stat.st_mtime, stat.st_size, parsed)
            found += parsed
        return found

    def _find(self, kind: str, name: str) -> _File:
        for f in self._files():
            if f.kind == kind and f.name == name:
                return f
        raise backend.not_found(kind, name, NAMESPACE)

    def _of_kind(self, kind: str) -> list[_File]:
        return [f for f in self._files() if f.kind == kind]

    def _namespace(self, namespace: str) -> None:
        if namespace != NAMESPACE:
            raise kube.NotFound(
                404, "NotFound", f"namespace {namespace!r}: a workspace has only {NAMESPACE!r}"
            )

    def _workflow_model(self, namespace: str, name: str) -> workflow.Workflow:
        self._namespace(namespace)
        f = self._find("Workflow", name)
        resource = loader.to_resource(dict(f.data), errors.Where(file=f.path.name))
        assert isinstance(resource, workflow.Workflow)
        return resource

    def _integration_models(self) -> list[integration.Integration]:
        out = []
        for f in self._of_kind("Integration"):
            try:
                resource = loader.to_resource(dict(f.data), errors.Where(file=f.path.name))
            except errors.AutoflowError:
                continue
            if isinstance(resource, integration.Integration):
                out.append(resource)
        return out

    def _secrets_path(self) -> pathlib.Path:
        return self.state / "secrets.yaml"

    def _secrets(self) -> dict[str, dict[str, str]]:
        path = self._secrets_path()
        return local.read_secrets_file(str(path)) if path.exists() else {}

    def _write_secrets(self, values: Mapping[str, Mapping[str, str]]) -> None:
        path = self._secrets_path()
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            yaml.safe_dump({k: dict(v) for k, v in values.items()}, out, sort_keys=True)
        os.replace(tmp, path)
        self._changed()

    def _integration_provider(self, namespace: str) -> local.LocalIntegrations:
        return local.LocalIntegrations(self._integration_models(), self._secrets(), env={})

    def _write(self, path: pathlib.Path, text: str) -> None:
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        self._cache.pop(path, None)
        self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change()

    # -- the API -----------------------------------------------------------------------------

    async def namespaces(self, person: backend.Person) -> list[str]:
        return [NAMESPACE]

    def _ready(self, f: _File) -> dict[str, Any]:
        """The Workflow's Ready condition as the operator would judge it: its text checked as
        ``autoflow validate`` checks it (cached per file version)."""
        key = (f.path, version_of(f.raw))
        found = self._checked.get(key)
        if found is None:
            types = {
                g.name: (g.data.get("spec") or {}).get("type") for g in self._of_kind("Integration")
            }
            _, problems = texts.check_workflow(f.raw.decode("utf-8"), integrations=types)
            if problems and f.single:
                first = problems[0]
                found = {"status": "False", "reason": "Invalid", "message": str(first)}
                if len(problems) > 1:
                    found["message"] += f" (and {len(problems) - 1} more)"
            else:
                found = {"status": "True", "reason": "Valid", "message": ""}
            self._checked[key] = found
        return found

    def _view(self, f: _File) -> dict[str, Any]:
        spec = f.data.get("spec") if isinstance(f.data.get("spec"), dict) else {}
        assert isinstance(spec, dict)
        annotations = (f.data.get("metadata") or {}).get("annotations") or {}
        return {
            "name": f.name,
            "namespace": NAMESPACE,
            "yaml": f.raw.decode("utf-8"),
            "resourceVersion": version_of(f.raw),
            "ready": self._ready(f),
            "spec": spec,
            "changedBy": annotations.get(backend.CHANGED_BY)
            if isinstance(annotations, dict)
            else None,
            "description": str(spec.get("description") or ""),
            "triggers": spec.get("triggers") or [],
        }

    async def list_workflows(self, person: backend.Person, namespace: str) -> list[dict[str, Any]]:
        self._namespace(namespace)
        files = self._of_kind("Workflow")
        runs = await self.views.workflow_runs(namespace, [f.name for f in files])
        items = []
        for f in files:
            view = self._view(f)
            for key in ("yaml", "spec", "changedBy"):
                view.pop(key)
            items.append({**view, **runs[f.name]})
        return items

    async def workflow_names(self, person: backend.Person, namespace: str) -> list[str]:
        self._namespace(namespace)
        return [f.name for f in self._of_kind("Workflow")]

    async def get_workflow(
        self, person: backend.Person, namespace: str, name: str
    ) -> dict[str, Any]:
        self._namespace(namespace)
        view = self._view(self._find("Workflow", name))
        for key in ("description", "triggers"):
            view.pop(key)
        return view

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
        self._namespace(namespace)
        async with self._lock:
            existing = next((f for f in self._of_kind("Workflow") if f.name == name), None)
            if create:
                if existing is not None:
                    raise backend.conflict("Workflow", name, "exists already")
                path = self.dir / f"{name}.yaml"
                if path.exists():
                    raise backend.conflict("Workflow", name, f"the file {path.name} exists")
            else:
                if existing is None:
                    raise backend.not_found("Workflow", name, namespace)
                if not existing.single:
                    raise backend.conflict(
                        "Workflow",
                        name,
                        f"{existing.path.name} holds other documents too; edit that file by hand",
                    )
                current = version_of(existing.path.read_bytes())
                if if_match is not None and if_match != current:
                    raise backend.conflict(
                        "Workflow",
                        name,
                        "changed since it was read (resourceVersion "
                        f"{if_match} is not the current {current}); reload and edit again",
                    )
                path = existing.path
            self._write(path, text)
            self._audit(person, "created" if create else "changed", name)
        return await self.get_workflow(person, namespace, name)

    def _audit(
        self, person: backend.Person, action: str, name: str, *, kind: str = "Workflow"
    ) -> None:
        """Who changed which Workflow or Schedule, appended to DIR/.autoflow/audit.log (one
        JSON line)."""
        import json

        line = json.dumps(
            {"at": time.time(), "user": person.user, "action": action, kind.lower(): name}
        )
        with open(self.state / "audit.log", "a", encoding="utf-8") as out:
            out.write(line + "\n")

    async def delete_workflow(self, person: backend.Person, namespace: str, name: str) -> None:
        self._namespace(namespace)
        async with self._lock:
            f = self._find("Workflow", name)
            if not f.single:
                raise backend.conflict("Workflow", name, f"{f.path.name} holds other documents too")
            f.path.unlink()
            self._cache.pop(f.path, None)
            self._changed()
            self._audit(person, "deleted", name)

    async def integration_types(
        self, person: backend.Person, namespace: str
    ) -> dict[str, str | None] | None:
        types: dict[str, str | None] = {}
        for f in self._of_kind("Integration"):
            spec = f.data.get("spec")
            kind = spec.get("type") if isinstance(spec, dict) else None
            types[f.name] = kind if isinstance(kind, str) else None
        return types

    async def check_runs_access(self, person: backend.Person, namespace: str, verb: str) -> None:
        self._namespace(namespace)

    async def start_run(
        self,
        person: backend.Person,
        namespace: str,
        workflow: str,
        inputs: Mapping[str, Any],
        *,
        trigger: str = "api",
    ) -> str:
        self._namespace(namespace)
        self._find("Workflow", workflow)
        self._changed()  # a file edited by hand a moment ago: the launcher reads it now
        request = RunRequest(namespace, workflow, dict(inputs), trigger, person.user)
        started = await self.launcher.launch(request)
        return str(started.run_id)

    async def cancel_run(self, person: backend.Person, namespace: str, run_id: str) -> None:
        detail = await self.views.run_detail(namespace, run_id)
        if detail.summary.phase not in ("Running", "Pending"):
            raise backend.conflict("run", run_id, f"is {detail.summary.phase} already")
        if not self.launcher.cancel(run_id):
            raise backend.conflict("run", run_id, "is not running in this process")

    async def retry_run(self, person: backend.Person, namespace: str, run_id: str) -> str:
        detail, records = await self.views.retry_source(namespace, run_id)
        name = detail.summary.workflow
        wf = self._workflow_model(namespace, name)
        from autoflow.runners import engine
        from autoflow.runners.definitions import inputs as inputs_mod
        from autoflow.runners.definitions import plan as plan_mod
        from autoflow.runners.engine import journal as journal_mod

        compiled = plan_mod.compile_workflow(wf)
        if engine.spec_hash(compiled) != detail.summary.spec_hash:
            raise backend.conflict(
                "run",
                run_id,
                "ran an earlier version of the Workflow; its steps' outputs "
                "cannot be reused: rerun it instead",
            )
        reused = journal_mod.reusable(records, compiled.main.order)
        # The journal's header has the inputs as given (secret ones opened from their seal);
        # the detail shows secret ones only as the redaction marker.
        header = records[0] if records and records[0].get("t") == "run" else {}
        given = dict(header.get("inputs") or detail.inputs or {})
        if header.get("sealedInputs") or any(inputs_mod.is_redacted(v) for v in given.values()):
            raise backend.conflict(
                "run",
                run_id,
                "has secret inputs the run store cannot give back: start a new run with them",
            )
        request = RunRequest(namespace, name, given, "retry", person.user)
        self._changed()
        started = await self.launcher.launch(request, reuse=reused)
        return str(started.run_id)

    async def events(
        self, person: backend.Person, namespace: str, run_id: str | None, after: int | None
    ) -> AsyncIterator[dict[str, Any]]:
        self._namespace(namespace)
        async for event in self.events_hub.subscribe(namespace, run_id, after):
            yield event

    # -- integrations ------------------------------------------------------------------------

    def _integration_view(self, f: _File) -> dict[str, Any]:
        spec = f.data.get("spec") if isinstance(f.data.get("spec"), dict) else {}
        assert isinstance(spec, dict)
        stored = self._secrets().get(f.name, {})
        return {
            "name": f.name,
            "namespace": NAMESPACE,
            "type": spec.get("type"),
            "spec": spec,
            "secretKeys": sorted(stored),
            "health": self._health.get(f.name),
            "resourceVersion": version_of(f.raw),
        }

    async def list_integrations(
        self, person: backend.Person, namespace: str
    ) -> list[dict[str, Any]]:
        self._namespace(namespace)
        return [self._integration_view(f) for f in self._of_kind("Integration")]

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
        self._namespace(namespace)
        async with self._lock:
            existing = next((f for f in self._of_kind("Integration") if f.name == name), None)
            if create and existing is not None:
                raise backend.conflict("Integration", name, "exists already")
            if not create and existing is None:
                raise backend.not_found("Integration", name, namespace)
            doc = {
                "apiVersion": "autoflow.dev/v1alpha1",
                "kind": "Integration",
                "metadata": {"name": name},
                "spec": dict(spec),
            }
            loader.to_resource(doc, errors.Where(resource=f"Integration/{name}"))
            path = existing.path if existing else self.dir / f"{name}.integration.yaml"
            if existing is not None and not existing.single:
                raise backend.conflict("Integration", name, f"{path.name} holds other documents")
            if secrets:
                values = self._secrets()
                values.setdefault(name, {}).update({k: str(v) for k, v in secrets.items()})
                self._write_secrets(values)
            self._write(path, yaml.safe_dump(doc, sort_keys=False))
            self._health.pop(name, None)
        return self._integration_view(self._find("Integration", name))

    async def test_integration(
        self, person: backend.Person, namespace: str, name: str
    ) -> dict[str, Any]:
        self._namespace(namespace)
        self._find("Integration", name)
        models = {i.metadata.name: i for i in self._integration_models()}
        intg = models.get(name)
        redactor = redact.Redactor()
        if intg is None:
            health = {
                "ready": False,
                "reason": probe.INVALID_SETTINGS,
                "message": f"integration {name!r}: the manifest is not valid",
            }
        else:
            provider = local.LocalIntegrations(list(models.values()), self._secrets(), env={})
            try:
                info = access.info_for(intg, provider.secrets(name, redactor))
                verdict = await probe.check(info, redactor)
            except errors.AutoflowError as exc:
                verdict = probe.failed(name, exc, redactor)
            health = {"ready": verdict.ready, "reason": verdict.reason, "message": verdict.message}
        health["checkedAt"] = time.time()
        self._health[name] = health
        return health

    async def oauth_integration(
        self, person: backend.Person, namespace: str, name: str
    ) -> tuple[integration.Integration, str]:
        self._namespace(namespace)
        self._find("Integration", name)
        intg = {i.metadata.name: i for i in self._integration_models()}.get(name)
        if intg is None or intg.spec.oauth2 is None:
            raise errors.ManifestError(
                "the Integration has no spec.oauth2 to connect",
                errors.Where(resource=f"Integration/{name}", field="spec.oauth2"),
            )
        secret = self._secrets().get(name, {}).get("clientSecret", "")
        return intg, secret

    async def store_token(
        self, person: backend.Person, namespace: str, name: str, token: Mapping[str, str]
    ) -> None:
        async with self._lock:
            values = self._secrets()
            values.setdefault(name, {}).update(token)
            self._write_secrets(values)

    async def list_schedules(self, person: backend.Person, namespace: str) -> list[dict[str, Any]]:
        self._namespace(namespace)
        out = []
        for f in self._of_kind("Schedule"):
            try:
                model = loader.to_resource(dict(f.data), errors.Where(file=f.path.name))
            except errors.AutoflowError:
                continue
            if isinstance(model, schedule.Schedule):
                status = model.status.dump() if model.status else None
                out.append(backend.schedule_view(f.name, NAMESPACE, model.spec.dump(), status))
        return out

    async def suspend_schedule(
        self, person: backend.Person, namespace: str, name: str, suspend: bool
    ) -> dict[str, Any]:
        self._namespace(namespace)
        async with self._lock:
            f = self._find("Schedule", name)
            text = f.raw.decode("utf-8")
            for doc in documents.parse(text, f.path.name):
                data = doc.data if isinstance(doc.data, dict) else {}
                if (
                    data.get("kind") == "Schedule"
                    and (data.get("metadata") or {}).get("name") == name
                ):
                    changed = set_spec_field(
                        text, doc.node, "suspend", "true" if suspend else "false"
                    )
                    break
            else:  # _find saw it a moment ago: the file changed in between
                raise backend.not_found("Schedule", name, namespace)
            if changed != text:
                self._write(f.path, changed)
                self._audit(person, "suspended" if suspend else "resumed", name, kind="Schedule")
        (view,) = [s for s in await self.list_schedules(person, namespace) if s["name"] == name]
        return view
