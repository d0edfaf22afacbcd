"""``autoflow run``: a workflow from files, in this process, no cluster and no database.

The files may hold the Workflow and the Integrations it uses. Credentials of an Integration
come from environment variables ``AUTOFLOW_SECRET_<INTEGRATION>_<KEY>`` (upper case, ``-`` and
``.`` as ``_``) or from a secrets file (``--secrets FILE``: a YAML mapping of integration name
to key/value pairs), never from the manifest. An OAuth2 Integration's tokens are keys there
too (``accessToken``, ``refreshToken``, ``expiresAt``, as ``autoflow integrations authorize``
writes them); an expired one is refreshed in memory for the run (``runners.access.oauth2``).

With ``--journal DIR`` the run is journaled to ``DIR/<workflow>.jsonl``. Starting again with an
unfinished journal resumes that run after its last journaled step, with the inputs it started
with (inputs given again must be the same; ``restart`` starts a new run instead). A finished
run's journal is kept as ``DIR/<run id>.jsonl`` (run ids start with the workflow name) the
moment the run ends, so the next start is a new run. A journal that is damaged or whose run id
is not a safe file name is refused before anything runs.
With ``--store URL`` the run is journaled into the run store instead (``runners.store``):
the newest unfinished run of the workflow there is resumed, else a new one starts.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from autoflow.connectors import sdk
from autoflow.crds import errors, integration, workflow
from autoflow.runners import engine
from autoflow.runners.access import integrations as integrations_mod
from autoflow.runners.access import limits, redact
from autoflow.runners.definitions import documents, integration_checks, loader
from autoflow.runners.definitions import inputs as inputs_mod
from autoflow.runners.definitions import plan as plan_mod
from autoflow.runners.engine import journal

log = logging.getLogger("autoflow.local")

SECRET_ENV_PREFIX = "AUTOFLOW_SECRET_"
ENV_PREFIX = "AUTOFLOW_ENV_"


def expression_env(wf: workflow.Workflow, environ: Mapping[str, str]) -> dict[str, str]:
    """What ``env`` holds in expressions: ``runtime.env`` plus ``AUTOFLOW_ENV_*`` variables.

    Not the whole process environment: that holds credentials a manifest must not read.
    """
    values = dict(wf.spec.runtime.env) if wf.spec.runtime else {}
    values.update({k[len(ENV_PREFIX) :]: v for k, v in environ.items() if k.startswith(ENV_PREFIX)})
    return values


def secret_env_name(integration_name: str, key: str) -> str:
    return SECRET_ENV_PREFIX + re.sub(r"[^A-Za-z0-9]", "_", f"{integration_name}_{key}").upper()


class _Secrets:
    """Reads one integration's keys from a secrets file or the environment, reporting them."""

    def __init__(
        self,
        intg: integration.Integration,
        values: Mapping[str, str],
        env: Mapping[str, str],
        redactor: redact.Redactor,
    ) -> None:
        self._intg = intg
        self._values = values
        self._env = env
        self._redactor = redactor

    def get(self, key: str) -> str:
        name = self._intg.metadata.name or ""
        ref = self._intg.spec.secret_ref
        if ref is not None and ref.keys and key not in ref.keys:
            raise errors.PermanentError(
                f"integration {name!r} does not allow secret key {key!r} (secretRef.keys: "
                f"{', '.join(ref.keys)})"
            )
        value = self._values.get(key)
        if value is None:
            value = self._env.get(secret_env_name(name, key))
        if value is None:
            raise errors.MissingSecretError(
                f"integration {name!r} has no secret {key!r}: set {secret_env_name(name, key)} "
                "or add it to the --secrets file"
            )
        self._redactor.add(value)
        return value


class LocalIntegrations:
    """Integrations from manifest files, secrets from the environment or a secrets file."""

    def __init__(
        self,
        integrations: Sequence[integration.Integration],
        secrets: Mapping[str, Mapping[str, str]] | None = None,
        env: Mapping[str, str] | None = None,
        token_cache: integrations_mod.TokenCache | None = None,
    ) -> None:
        self._by_name = {i.metadata.name or "": i for i in integrations}
        self._secrets = secrets or {}
        self._env = os.environ if env is None else env
        self._token_cache = token_cache

    def names(self) -> set[str]:
        return set(self._by_name)

    def find(self, name: str) -> integration.Integration:
        intg = self._by_name.get(name)
        if intg is None:
            known = ", ".join(sorted(self._by_name)) or "none given"
            raise errors.PermanentError(
                f"integration {name!r} not found (integrations: {known}); pass its manifest "
                "file to autoflow run"
            )
        return intg

    def secrets(self, name: str, redactor: redact.Redactor) -> sdk.Secrets:
        """The integration's keys as given, without the OAuth2 flow's ``accessToken``."""
        values = {str(k): str(v) for k, v in (self._secrets.get(name) or {}).items()}
        return _Secrets(self.find(name), values, self._env, redactor)

    async def get(self, name: str, redactor: redact.Redactor) -> sdk.IntegrationInfo:
        # On a laptop nobody else refreshes an OAuth2 token, so the run does (in memory).
        return await integrations_mod.resolve_info(
            self.find(name),
            self.secrets(name, redactor),
            redactor,
            can_refresh=True,
            token_cache=self._token_cache,
        )


def read_secrets_file(path: str) -> dict[str, dict[str, str]]:
    # The same reader and limits as manifests; its errors never quote the file's content.
    data = documents.read_one(path, "secrets file", quote=False).data
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise errors.ManifestError(
            "a secrets file maps integration names to key/value mappings", errors.Where(file=path)
        )
    return {str(k): {str(a): str(b) for a, b in v.items()} for k, v in data.items()}


def load(
    paths: Sequence[str], workflow_name: str | None = None
) -> tuple[workflow.Workflow, list[integration.Integration], str]:
    """The workflow to run (and the file it came from) plus every Integration in the files."""
    workflows: list[tuple[workflow.Workflow, str]] = []
    integrations: list[integration.Integration] = []
    for path in paths:
        for res in loader.load_file(path):
            if isinstance(res, workflow.Workflow):
                workflows.append((res, path))
            elif isinstance(res, integration.Integration):
                integrations.append(res)
    if workflow_name is not None:
        workflows = [(w, p) for w, p in workflows if w.metadata.name == workflow_name]
    if not workflows:
        named = f" named {workflow_name!r}" if workflow_name else ""
        raise errors.ManifestError(f"no Workflow{named} in {', '.join(paths)}")
    if len(workflows) > 1:
        names = ", ".join(w.metadata.name or "?" for w, _ in workflows)
        raise errors.ManifestError(f"several Workflows ({names}); choose one with --workflow")
    wf, path = workflows[0]
    return wf, integrations, path


class RunJournal(journal.FileJournal):
    """``DIR/<workflow>.jsonl``, kept as ``DIR/<run id>.jsonl`` as soon as the run's end is
    recorded and the engine closes it: the next start finds no journal and is a new run."""

    def __init__(self, path: str, run_id: str | None = None) -> None:
        super().__init__(path)
        self._run_id = run_id
        self._ended = False

    def append(self, record: dict[str, Any]) -> None:
        super().append(record)
        if record["t"] == "run":
            self._run_id = record["runId"]
        elif record["t"] == "end":
            self._ended = True

    def close(self) -> None:
        super().close()
        if self._ended and self._run_id is not None:
            try:
                keep_as(self.path, self._run_id)
            except errors.AutoflowError as exc:
                # The run is over and its result stands; the next start says what is wrong.
                log.warning("%s", exc)
            self._ended = False


def keep_as(path: str, run_id: str) -> str:
    """Move the journal at ``path`` to ``<run id>.jsonl`` beside it; never over another file."""
    where = errors.Where(file=path)
    if not journal.is_safe_run_id(run_id):
        raise errors.RunError(f"corrupt journal: unsafe run id {run_id[:80]!r}", where)
    target = os.path.join(os.path.dirname(path), f"{run_id}.jsonl")
    if os.path.lexists(target):
        raise errors.RunError(
            f"cannot keep the journal of run {run_id!r} as {target}: that file exists; move "
            "one of them away",
            where,
        )
    os.replace(path, target)
    return target


def open_journal(
    directory: str, name: str, *, restart: bool = False
) -> tuple[RunJournal, str | None]:
    """The journal for this workflow's run, and the run id to resume (None: a new run).

    A finished run's journal still in place (from before journals were kept at once, or when
    keeping it failed) is kept now; with ``restart`` an unfinished one is kept too, and a new
    run starts. A damaged journal is refused with the file and line.
    """
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        reason = "it is a file" if isinstance(exc, FileExistsError) else exc.strerror
        raise errors.ManifestError(
            f"cannot use as the journal directory: {reason}", errors.Where(file=directory)
        ) from None
    path = os.path.join(directory, f"{name}.jsonl")
    try:
        state = journal.replay(journal.FileJournal(path).read())
    except errors.RunError as exc:
        raise errors.RunError(
            f"{exc.message}; the run cannot resume from this journal: move it away (or add "
            "--restart once it is readable) to start a new run",
            exc.where,
        ) from None
    if state.header is None:
        return RunJournal(path), None
    run_id = str(state.header["runId"])
    if state.end is not None or restart:
        keep_as(path, run_id)
        return RunJournal(path), None
    return RunJournal(path, run_id), run_id


def new_run_id(name: str) -> str:
    # Workflow names are DNS names (up to 253 characters); a run id also names a file.
    return f"{name[: journal.RUN_ID_MAX_LENGTH - 11]}-{uuid.uuid4().hex[:10]}"


def resumed_inputs(
    declared: Mapping[str, workflow.Input],
    header: Mapping[str, Any],
    given: Mapping[str, Any],
    where: errors.Where,
    *,
    from_text: bool,
    journal_path: str | None = None,
) -> dict[str, Any]:
    """The inputs of a resumed run: those it started with. Inputs given again must name
    declared inputs and have the values the run started with (after the same conversion a
    new run makes); a resumed run never goes on silently with other values than asked."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        known = ", ".join(sorted(declared)) or "none"
        raise errors.InputError(
            f"unknown input {unknown[0]!r} (declared inputs: {known})",
            where.replace(field=f"inputs.{unknown[0]}"),
        )
    started_with: dict[str, Any] = dict(header["inputs"])
    # Inputs declared secret: the store kept a marker, not the value; the value must be
    # given again (it cannot be compared: whatever is given is what the run goes on with).
    withheld = sorted(n for n, v in started_with.items() if inputs_mod.is_redacted(v))
    missing = [n for n in withheld if n not in given]
    if missing:
        flags = " ".join(f"--input {n}=..." for n in missing)
        raise errors.InputError(
            f"unfinished run {header['runId']!r} started with secret input"
            f"{'s' if len(missing) > 1 else ''} {', '.join(repr(n) for n in missing)}, whose "
            f"value the run store does not keep: give {'them' if len(missing) > 1 else 'it'} "
            f"again to resume the run ({flags})",
            where.replace(field=f"inputs.{missing[0]}"),
        )
    differ: list[str] = []
    for name, raw in given.items():
        value = inputs_mod.resolve({name: declared[name]}, {name: raw}, where, from_text=from_text)
        if name in withheld:
            started_with[name] = value[name]
            continue
        if _same(value[name], started_with.get(name)):
            continue
        differ.append(
            f"{name!r} is {_shown(value[name])}, the run started with "
            f"{_shown(started_with.get(name))}"
        )
    if differ:
        raise errors.InputError(
            f"the journal holds unfinished run {header['runId']!r}, started with other inputs: "
            f"{'; '.join(differ)}. Give the inputs it started with (or none) to resume it, or "
            "add --restart to start a new run",
            where.replace(file=journal_path or where.file),
        )
    return started_with


def _same(a: Any, b: Any) -> bool:
    # As JSON: 1 and True, or 1 and 1.0, are different inputs to a workflow.
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _shown(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


def prepare(
    paths: Sequence[str],
    *,
    given_inputs: Mapping[str, Any],
    from_text: bool,
    journal_dir: str | None = None,
    store_url: str | None = None,
    workflow_name: str | None = None,
    secrets_file: str | None = None,
    observer: engine.Observer | None = None,
    env: Mapping[str, str] | None = None,
    limiter: limits.Limiter | None = None,
    restart: bool = False,
) -> engine.Run:
    """Everything ``autoflow run`` does before the engine starts; errors name file and field.

    Without a ``limiter``, Integration limits are kept as ``AUTOFLOW_REDIS_URL`` says
    (``limits.from_env``); the caller closes ``run.limiter`` when the run is over. With
    ``restart`` an unfinished journal is kept aside and a new run starts.
    """
    wf, integrations, path = load(paths, workflow_name)
    where = errors.Where(file=path, resource=wf.ref)
    compiled = plan_mod.compile_workflow(wf, where=errors.Where(file=path))
    secrets = read_secrets_file(secrets_file) if secrets_file else None
    provider = LocalIntegrations(integrations, secrets, env)
    types = {i.metadata.name or "": i.spec.type for i in integrations}
    problems = integration_checks.integration_problems(
        wf, types, errors.Where(file=path), missing=integration_checks.NOT_GIVEN
    )
    if problems:
        raise errors.ValidationError(problems)
    name = wf.metadata.name or "workflow"
    jr: journal.Journal
    run_id: str | None = None
    store_jr = None  # the run store's journal, told the run's data subject below
    if store_url and journal_dir:
        raise errors.ManifestError("--journal and --store both journal the run; choose one")
    if store_url:
        from autoflow.runners.store import journal as store_journal

        store_jr, run_id = store_journal.open_local(
            store_url,
            name,
            engine.spec_hash(compiled),
            spec=wf.spec.dump(),
            secret_inputs=inputs_mod.secret_names(wf.spec.inputs),
        )
        jr = store_jr
    elif journal_dir:
        jr, run_id = open_journal(journal_dir, name, restart=restart)
    else:
        jr = journal.MemoryJournal()
    header = journal.replay(jr.read()).header if run_id is not None else None
    # The store refuses another definition's run itself (open_local); a journal file is
    # refused here, before the run starts, so the message can name the file to move.
    if (
        isinstance(jr, RunJournal)
        and header is not None
        and header["specHash"] != engine.spec_hash(compiled)
    ):
        raise errors.ManifestError(
            f"the journal holds unfinished run {run_id!r} of a different definition of "
            f"workflow {name!r}; resume it with the workflow it started with, or add "
            "--restart to start a new run",
            errors.Where(file=jr.path),
        )
    if header is not None:
        values = resumed_inputs(
            wf.spec.inputs,
            header,
            given_inputs,
            where,
            from_text=from_text,
            journal_path=jr.path if isinstance(jr, RunJournal) else None,
        )
    else:
        values = inputs_mod.resolve(wf.spec.inputs, given_inputs, where, from_text=from_text)
        subject = inputs_mod.data_subject(wf.spec, values, where) if store_jr else None
        if store_jr is not None and subject is not None:
            store_jr.about(subject)
    return engine.Run(
        compiled,
        run_id=run_id or new_run_id(name),
        inputs=values,
        journal=jr,
        integrations=provider,
        observer=observer,
        env=expression_env(wf, os.environ if env is None else env),
        limiter=limits.from_env(os.environ if env is None else env) if limiter is None else limiter,
    )
