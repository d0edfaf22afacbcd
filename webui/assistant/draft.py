"""The assistant: a sentence (and maybe the Workflow it changes) in, a valid Workflow out.

    prompt ─ catalogue.search (the relevant actions) + Integrations (names, types)
           + expression examples ─ the model, answering in schema.answer_schema()
           ─ schema.to_manifest ─ checks.check_manifest (what `autoflow validate` runs)
           ─ valid: done │ problems: all of them back to the model, at most N repairs

Nothing is applied: the result is YAML and a unified diff against the Workflow it started
from, for a person to look at. A draft still invalid after the last repair is returned with
``valid`` false and the remaining problems. Integrations a step names that do not exist are
listed in ``missing_integrations`` (name and the connector type it must have), not created.

What is sent to the provider: the request, the current Workflow's YAML when there is one, the
matching catalogue actions, the names and types of the namespace's Integrations (never their
settings or secrets) and the problems ``autoflow validate`` found in the model's own answers.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from typing import Any

import yaml

from autoflow.connectors import registry as registry_mod
from autoflow.connectors.sdk import llm
from autoflow.crds import errors
from autoflow.runners.definitions import checks
from autoflow.webui.assistant import catalogue, schema

DEFAULT_REPAIRS = 3

SYSTEM = """\
You write Autoflow Workflows: a DAG of steps, each running one connector action.
- `uses` is connector.action and must be one of the actions listed for you; `with` holds its
  parameters (required ones have no `?`), as name/value pairs, each value JSON text.
- `needs` lists the steps that must finish first; left null it is the step before in the
  list; [] means none. Steps must not form a cycle. Step ids are letters, digits and _.
- Expressions go inside ${ ... }: ${ inputs.email }, ${ steps.fetch.output.body.total },
  "Order ${ inputs.orderId } failed", a bare `if: steps.check.output.value > 100`,
  `foreach: ${ steps.list.output.items }` with ${ item } and ${ index } in `with`.
  Roots: inputs, steps.<id>.output / .status (only of steps it needs), run, env, item,
  index, error (in onError steps).
- Declare every input the expressions read under inputs (as name/value pairs).
- A webhook trigger starts a run from an HTTP request; set what the schema asks of it (its
  path, how requests are authenticated, the name of the Secret that holds the signing key,
  never a key itself) and declare the inputs the steps read.
- Set `integration` on steps whose connector needs credentials, to the name of an existing
  Integration of that connector's type. When none exists, name the one that would be needed
  (lowercase, e.g. `stripe`); it will be shown to the person as missing, never created.
- Do not invent connectors, actions, parameters or Integrations.
Answer only with the Workflow as JSON following the schema."""


@dataclasses.dataclass(frozen=True, slots=True)
class MissingIntegration:
    name: str
    type: str
    steps: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "steps": list(self.steps)}


@dataclasses.dataclass(slots=True)
class Draft:
    """What the assistant proposes; ``valid`` False means the problems remain."""

    yaml: str
    diff: str
    valid: bool
    rounds: int  # repair rounds used (0: the first answer was valid)
    problems: list[errors.Problem]
    missing_integrations: list[MissingIntegration]
    usage: llm.Usage
    actions: list[str]  # the catalogue actions the model was shown

    def as_json(self) -> dict[str, Any]:
        return {
            "yaml": self.yaml,
            "diff": self.diff,
            "valid": self.valid,
            "rounds": self.rounds,
            "problems": [problem_json(p) for p in self.problems],
            "missingIntegrations": [m.as_json() for m in self.missing_integrations],
            "usage": self.usage.as_json(),
        }


def problem_json(p: errors.Problem) -> dict[str, Any]:
    """A problem as the web API gives one: path (step and field), line, message."""
    w = p.where
    path = ".".join(part for part in (f"step {w.step}" if w.step else "", w.field or "") if part)
    return {"path": path or None, "line": w.line, "message": str(p)}


class AssistantFailed(errors.AutoflowError):
    """The assistant could not make a valid Workflow; ``draft`` holds its last attempt."""

    def __init__(self, draft: Draft) -> None:
        count = len(draft.problems)
        listing = "\n".join(f"  - {p}" for p in draft.problems)
        super().__init__(
            f"no valid Workflow after {draft.rounds} repair round"
            f"{'s' if draft.rounds != 1 else ''}; {count} problem{'s' if count != 1 else ''} "
            f"remain:\n{listing}"
        )
        self.draft = draft


def context(
    prompt: str,
    current: str | None,
    integrations: Mapping[str, str],
    registry: registry_mod.Registry | None,
) -> tuple[str, list[str]]:
    """The first message: the request and what grounds it. Also the actions shown."""
    found = catalogue.search(prompt + " " + (current or ""), registry, limit=12)
    shown = [c.uses for c in found]
    core = [c for c in catalogue.cards(registry) if c.uses.startswith("core.")]
    parts = [f"Request: {prompt}", "", "Actions you may use (? marks an optional parameter):"]
    parts.append(catalogue.texts([*found, *(c for c in core if c.uses not in shown)]))
    parts.append("")
    if integrations:
        listed = ", ".join(f"{n} (type {t})" for n, t in sorted(integrations.items()))
        parts.append(f"Integrations that exist: {listed}.")
    else:
        parts.append("No Integrations exist yet in this namespace.")
    if current:
        parts += ["", "Change this Workflow as asked (keep what is not asked to change):", current]
    return "\n".join(parts), shown + [c.uses for c in core if c.uses not in shown]


def repair_message(
    problems: list[errors.Problem],
    manifest: Mapping[str, Any],
    registry: registry_mod.Registry | None,
) -> str:
    """Every problem, and for a made-up action the real ones nearest to it."""
    lines = ["`autoflow validate` found these problems in your Workflow:"]
    lines += [f"- {p}" for p in problems]
    unknown = [
        str(step.get("uses"))
        for step in _steps(manifest)
        if isinstance(step.get("uses"), str) and not catalogue.known(step["uses"], registry)
    ]
    for uses in dict.fromkeys(unknown):
        near = catalogue.search(uses.replace(".", " "), registry, limit=5)
        if near:
            lines += ["", f"{uses} does not exist. Actions that do:", catalogue.texts(near)]
    lines += ["", "Answer with the whole corrected Workflow."]
    return "\n".join(lines)


def _steps(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    spec = manifest.get("spec")
    if not isinstance(spec, dict):
        return []
    found: list[dict[str, Any]] = []
    for section in ("steps", "onError", "finally"):
        items = spec.get(section)
        if isinstance(items, list):
            found += [s for s in items if isinstance(s, dict)]
    return found


def missing_integrations(
    manifest: Mapping[str, Any], integrations: Mapping[str, str]
) -> list[MissingIntegration]:
    needed: dict[str, tuple[str, list[str]]] = {}
    for step in _steps(manifest):
        name, uses = step.get("integration"), step.get("uses")
        if isinstance(name, str) and name and name not in integrations:
            connector = str(uses).partition(".")[0]
            needed.setdefault(name, (connector, []))[1].append(str(step.get("id")))
    return [MissingIntegration(n, t, tuple(s)) for n, (t, s) in needed.items()]


def to_yaml(manifest: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(manifest), sort_keys=False, allow_unicode=True, width=100)


def diff(before: str | None, after: str, name: str = "workflow.yaml") -> str:
    return "".join(
        difflib.unified_diff(
            (before or "").splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=f"a/{name}" if before is not None else "/dev/null",
            tofile=f"b/{name}",
        )
    )


def validate(
    manifest: Mapping[str, Any],
    integrations: Mapping[str, str],
    registry: registry_mod.Registry | None = None,
) -> list[errors.Problem]:
    """The problems `autoflow validate` reports for the manifest (a missing Integration is
    not one: the draft lists it instead)."""
    _, found = checks.check_manifest(
        manifest, integrations=dict(integrations), require_all=False, registry=registry
    )
    return found


async def draft(
    client: llm.Client,
    prompt: str,
    *,
    current: str | None = None,
    integrations: Mapping[str, str] | None = None,
    registry: registry_mod.Registry | None = None,
    repairs: int = DEFAULT_REPAIRS,
    name: str = "workflow.yaml",
) -> Draft:
    """Ask the model for a Workflow and repair it until it validates (at most ``repairs``
    rounds after the first answer)."""
    known = dict(integrations or {})
    first, shown = context(prompt, current, known, registry)
    messages = [llm.Message("user", first)]
    usage = llm.Usage()
    answer_schema = schema.answer_schema()
    rounds = 0
    while True:
        try:
            reply = await client.complete(
                messages, system=SYSTEM, schema=answer_schema, schema_name="workflow"
            )
        except llm.NotJSONError as exc:
            # A server without structured outputs: the answer is a problem like any other.
            reply = llm.Reply(exc.answer, None, llm.Usage(calls=1), client.config.model, None)
            not_json = [errors.Problem(f"the answer is not JSON: {exc.message}")]
        else:
            not_json = []
        usage.add(reply.usage)
        manifest = schema.to_manifest(reply.data)
        problems = not_json or validate(manifest, known, registry)
        text = to_yaml(manifest)
        if not problems or rounds >= repairs:
            return Draft(
                yaml=text,
                diff=diff(current, text, name),
                valid=not problems,
                rounds=rounds,
                problems=problems,
                missing_integrations=missing_integrations(manifest, known),
                usage=usage,
                actions=shown,
            )
        rounds += 1
        messages += [
            llm.Message("assistant", reply.text),
            llm.Message("user", repair_message(problems, manifest, registry)),
        ]


EXPLAIN = """\
Explain this Autoflow Workflow to someone who does not read YAML: what starts it, what each
step does in order (and what runs in parallel), what happens on failure, which Integrations
it uses. Plain words, short paragraphs or a short list; no YAML."""


async def explain(client: llm.Client, text: str) -> tuple[str, llm.Usage]:
    """The workflow described in plain words (only a Workflow manifest is sent)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise errors.ManifestSyntaxError(f"not YAML: {exc}") from None
    if not isinstance(data, dict) or data.get("kind") != "Workflow":
        raise errors.ManifestError("not a Workflow manifest (kind: Workflow)")
    reply = await client.complete([llm.Message("user", text)], system=EXPLAIN)
    return reply.text.strip(), reply.usage
