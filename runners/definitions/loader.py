"""Reading manifests from files into API objects, with errors that name file, step and field.

``load_file`` reads a YAML file (one or many documents) through ``documents.read_file`` (size
checked before parsing, aliases, nesting and duplicate keys bounded) and turns every document
into a ``Workflow``, ``WorkflowRun``, ``Integration`` or ``Schedule`` model. Whatever is wrong
comes back as one ``ManifestError`` (or a ``ValidationError`` with every problem of every
document), each problem at the line its step and field were written on (``locate``).
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Iterator
from typing import Any

import pydantic

from autoflow.crds import errors, integration, meta, problems, run, schedule, workflow
from autoflow.runners.definitions import documents

MAX_MANIFEST_BYTES = documents.MAX_FILE_BYTES
# One inline value this large is data, not configuration: it belongs in a URL, a ConfigMap
# or the run store, and would bloat every run's snapshot.
MAX_INLINE_VALUE_BYTES = 256 * 1024
MAX_EXPANDED_SIZE = documents.MAX_EXPANDED_SIZE
MAX_NESTING_DEPTH = documents.MAX_NESTING_DEPTH

KINDS: dict[str, type[meta.Resource]] = {
    "Workflow": workflow.Workflow,
    "WorkflowRun": run.WorkflowRun,
    "Integration": integration.Integration,
    "Schedule": schedule.Schedule,
}

Resource = workflow.Workflow | run.WorkflowRun | integration.Integration | schedule.Schedule

_SECTIONS = ("steps", "onError", "finally")
_TOP_LEVEL = {"apiVersion", "kind", "metadata", "spec", "status"}


def _size(n: int) -> str:
    return documents.size_text(n)


def _kind_of_value(value: Any) -> str:
    """What a YAML value is, in the words of someone who wrote it."""
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a text"
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "a number"
    return "a single value"


def manifest_documents(text: str, file: str = "<input>") -> list[documents.Document]:
    """The documents of a manifest text, each a mapping (empty documents are skipped)."""
    docs = documents.parse(text, file)
    return _mappings(docs, file)


def _mappings(docs: list[documents.Document], file: str) -> list[documents.Document]:
    for doc in docs:
        if not isinstance(doc.data, dict):
            raise errors.ManifestSyntaxError(
                "a manifest must be a mapping with apiVersion, kind, metadata and spec; "
                f"this document is {_kind_of_value(doc.data)}",
                errors.Where(file=file, line=doc.line),
            )
    if not docs:
        raise errors.ManifestSyntaxError("the file holds no manifest", errors.Where(file=file))
    return docs


def _oversized_values(value: Any, path: str) -> Iterator[tuple[str, int]]:
    if isinstance(value, str):
        size = len(value.encode("utf-8", "surrogatepass"))
        if size > MAX_INLINE_VALUE_BYTES:
            yield path, size
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _oversized_values(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _oversized_values(item, f"{path}[{i}]")


def _check_sizes(doc: dict[str, Any], where: errors.Where) -> list[errors.Problem]:
    problems: list[errors.Problem] = []
    spec = doc.get("spec")
    if not isinstance(spec, dict):
        return problems
    step_lists = [("steps", spec.get("steps")), ("onError", spec.get("onError"))]
    step_lists.append(("finally", spec.get("finally")))
    for _, steps in step_lists:
        for step in steps if isinstance(steps, list) else []:
            if not isinstance(step, dict):
                continue
            for field, size in _oversized_values(step, ""):
                problems.append(
                    errors.Problem(
                        f"inline value is {_size(size)}; the limit is "
                        f"{_size(MAX_INLINE_VALUE_BYTES)}: keep large data outside the manifest "
                        "(pass a URL or read it in a step)",
                        where.replace(step=str(step.get("id", "?")), field=field),
                    )
                )
    for field, size in _oversized_values(
        {k: v for k, v in spec.items() if k not in {"steps", "onError", "finally"}}, "spec"
    ):
        problems.append(
            errors.Problem(
                f"inline value is {_size(size)}; the limit is {_size(MAX_INLINE_VALUE_BYTES)}",
                where.replace(field=field),
            )
        )
    return problems


def _field_path(loc: tuple[int | str, ...], doc: dict[str, Any]) -> tuple[str | None, str]:
    """Turn a pydantic error location into (step id, field path) as a user reads them."""
    step: str | None = None
    node: Any = doc
    parts: list[str] = []
    i = 0
    while i < len(loc):
        part = loc[i]
        if (
            step is None
            and len(parts) == 2
            and parts[0] == "spec"
            and parts[1] in {"steps", "onError", "finally"}
            and isinstance(part, int)
        ):
            item = node[part] if isinstance(node, list) and part < len(node) else None
            step = (
                str(item.get("id")) if isinstance(item, dict) and item.get("id") else f"#{part + 1}"
            )
            node, parts, i = item, [], i + 1
            continue
        if isinstance(part, int):
            if parts:
                parts[-1] += f"[{part}]"
            else:
                parts.append(f"[{part}]")
        else:
            parts.append(str(part))
        node = _child(node, part)
        i += 1
    return step, ".".join(parts)


def _child(node: Any, key: int | str) -> Any:
    if isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
        return node[key]
    if isinstance(node, dict):
        return node.get(key)
    return None


def _schema_problems(
    exc: pydantic.ValidationError, doc: dict[str, Any], where: errors.Where
) -> list[errors.Problem]:
    found = []
    for err in exc.errors():
        step, field = _field_path(tuple(problems.data_path(err, doc)), doc)
        found.append(errors.Problem(problems.message(err), where.replace(step=step, field=field)))
    return list(dict.fromkeys(found))


def resource_where(doc: dict[str, Any], where: errors.Where) -> errors.Where:
    """``where`` with the resource (``Workflow/name``) the manifest says it is."""
    kind = doc.get("kind")
    metadata = doc.get("metadata")
    name = metadata.get("name") if isinstance(metadata, dict) else None
    if kind is not None or name is not None:
        return where.replace(resource=f"{kind or '<no kind>'}/{name or '<unnamed>'}")
    return where


def to_resource(
    doc: dict[str, Any], where: errors.Where, source: documents.Document | None = None
) -> Resource:
    """Validate one manifest mapping into its API model; a ``ValidationError`` lists every
    problem found (each at its own line when ``source`` is the document it came from)."""
    where = resource_where(doc, where)
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    problems: list[errors.Problem] = []
    if api_version != meta.API_VERSION:
        given = "is missing" if api_version is None else f"is {api_version!r}"
        problems.append(
            errors.Problem(
                f"apiVersion {given}; expected {meta.API_VERSION!r}",
                where.replace(field="apiVersion"),
            )
        )
    model = KINDS.get(str(kind))
    if model is None:
        problems.append(
            errors.Problem(
                f"kind {kind!r} is not an Autoflow kind (expected one of {', '.join(KINDS)})",
                where.replace(field="kind"),
            )
        )
    problems += _check_sizes(doc, where)
    metadata = doc.get("metadata")
    if not (metadata.get("name") if isinstance(metadata, dict) else None):
        problems.append(
            errors.Problem(
                "metadata.name is required (Kubernetes names every object)",
                where.replace(field="metadata.name"),
            )
        )
    resource: Resource | None = None
    if model is not None:
        try:
            resource = model.model_validate(doc)  # type: ignore[assignment]
        except pydantic.ValidationError as exc:
            # apiVersion and the name are said above, in words that say what is expected.
            said = {(p.where.step, p.where.field) for p in problems}
            problems += [
                p
                for p in _schema_problems(exc, doc, where)
                if (p.where.step, p.where.field) not in said
            ]
    if problems or resource is None:
        raise errors.ValidationError(locate_all(problems, doc, source))
    return resource


def locate_all(
    problems: list[errors.Problem], data: Any, source: documents.Document | None
) -> list[errors.Problem]:
    """Each problem with the line its step and field were written on (when known)."""
    if source is None:
        return list(dict.fromkeys(problems))
    return list(dict.fromkeys(locate(p, data, source) for p in problems))


def locate(problem: errors.Problem, data: Any, source: documents.Document) -> errors.Problem:
    """``problem`` at the line of its step and field in ``source``."""
    line = source.line_of(data_path(problem.where, data))
    return dataclasses.replace(problem, where=problem.where.replace(line=line))


_FIELD_PART = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def data_path(where: errors.Where, data: Any) -> list[str | int]:
    """The keys and indexes in a manifest mapping that a problem's step and field name.

    Fields are written as the user reads them: ``with.url`` inside a step, ``spec.timeout``
    or just ``outputs`` (inside ``spec``) on the resource.
    """
    path: list[str | int] = []
    spec = data.get("spec") if isinstance(data, dict) else None
    if where.step is not None:
        found = _step_path(spec, where.step)
        if found is None:
            return ["spec"]
        path = found
    fields: list[str | int] = []
    for match in _FIELD_PART.finditer(where.field or ""):
        index, key = match.groups()
        fields.append(int(index) if index is not None else key)
    if not path and fields and fields[0] not in _TOP_LEVEL:
        path = ["spec"]
    return path + fields


def _step_path(spec: Any, step: str) -> list[str | int] | None:
    if not isinstance(spec, dict):
        return None
    number = int(step[1:]) - 1 if step.startswith("#") and step[1:].isdigit() else None
    for section in _SECTIONS:
        steps = spec.get(section)
        if not isinstance(steps, list):
            continue
        for index, item in enumerate(steps):
            has_id = isinstance(item, dict) and item.get("id")
            if (has_id and str(item["id"]) == step) or (not has_id and index == number):
                return ["spec", section, index]
    return None


def with_lines(problems: list[errors.Problem]) -> list[errors.Problem]:
    """Problems found after loading (compiling a plan) with the line of their step and field,
    read again from the file each names; a file that no longer reads leaves them as they are."""
    sources: dict[str, list[documents.Document]] = {}
    located = []
    for problem in problems:
        where = problem.where
        if where.file and where.resource and where.line is None:
            if where.file not in sources:
                try:
                    sources[where.file] = documents.read_file(where.file)
                except errors.AutoflowError:
                    sources[where.file] = []
            for doc in sources[where.file]:
                if (
                    isinstance(doc.data, dict)
                    and resource_where(doc.data, errors.Where()).resource == where.resource
                ):
                    problem = locate(problem, doc.data, doc)
                    break
        located.append(problem)
    return located


def load_text(text: str, file: str = "<input>") -> list[Resource]:
    """Every resource in a YAML text; errors name ``file`` and the line of each problem."""
    return _resources(manifest_documents(text, file), file)


def _resources(docs: list[documents.Document], file: str) -> list[Resource]:
    resources: list[Resource] = []
    problems: list[errors.Problem] = []
    for doc in docs:
        try:
            resources.append(to_resource(doc.data, errors.Where(file=file, line=doc.line), doc))
        except errors.ValidationError as exc:
            problems += exc.problems
    if problems:
        raise errors.ValidationError(problems)
    return resources


def read_manifests(path: str | os.PathLike[str]) -> list[documents.Document]:
    """The documents of a manifest file, each a mapping; the file's size is checked before it
    is parsed."""
    docs = documents.read_file(path)
    return _mappings(docs, os.fspath(path))


def load_file(path: str | os.PathLike[str]) -> list[Resource]:
    """Every resource in a YAML file; errors name the file and the line of each problem."""
    return _resources(read_manifests(path), os.fspath(path))
