"""Reading manifests from files into API objects, with errors that name file, step and field.

``load_file`` reads a YAML file (one or many documents), checks its size and shape, and turns
every document into a ``Workflow``, ``WorkflowRun``, ``Integration`` or ``Schedule`` model.
Whatever is wrong comes back as one ``ManifestError`` (or a ``ValidationError`` with several
problems) whose text points at the place to fix; a YAML traceback never reaches the user.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pydantic
import yaml

from autoflow.crds import errors, integration, meta, run, schedule, workflow

# etcd refuses objects over about 1.5 MB; a manifest that large could never be applied.
MAX_MANIFEST_BYTES = 1024 * 1024
# One inline value this large is data, not configuration: it belongs in a URL, a ConfigMap
# or the run store, and would bloat every run's snapshot.
MAX_INLINE_VALUE_BYTES = 256 * 1024
# YAML aliases let a small file describe a huge (or endless) document; everything after the
# parser walks the expanded tree, so its size and depth are bounded before anything else runs.
MAX_EXPANDED_SIZE = 8 * MAX_MANIFEST_BYTES  # nodes plus scalar characters
MAX_NESTING_DEPTH = 100

KINDS: dict[str, type[meta.Resource]] = {
    "Workflow": workflow.Workflow,
    "WorkflowRun": run.WorkflowRun,
    "Integration": integration.Integration,
    "Schedule": schedule.Schedule,
}

Resource = workflow.Workflow | run.WorkflowRun | integration.Integration | schedule.Schedule


_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KiB"


def _yaml_documents(text: str, file: str) -> Iterator[tuple[Any, int]]:
    try:
        for node in yaml.compose_all(text, Loader=_Loader):
            if node is None:
                continue
            _check_expansion(node, file)
            yield _Loader("").construct_document(node), node.start_mark.line + 1
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or "invalid YAML"
        tab_line = _first_tab_indent(text)
        if tab_line is not None:
            problem, line = "a tab is used for indentation; YAML allows only spaces", tab_line
        raise errors.ManifestSyntaxError(
            f"YAML syntax: {problem}", errors.Where(file=file, line=line)
        ) from None
    except yaml.YAMLError as exc:
        raise errors.ManifestSyntaxError(f"YAML: {exc}", errors.Where(file=file)) from None


def _check_expansion(root: yaml.Node, file: str) -> None:
    """Refuse documents whose aliases loop or expand past the limits, and over-deep nesting."""
    known: dict[int, tuple[int, int]] = {}  # node → (expanded size, height)
    open_nodes: set[int] = set()

    def fail(message: str, node: yaml.Node) -> errors.ManifestSyntaxError:
        return errors.ManifestSyntaxError(
            message, errors.Where(file=file, line=node.start_mark.line + 1)
        )

    def walk(node: yaml.Node, depth: int) -> tuple[int, int]:
        key = id(node)
        if key in open_nodes:
            raise fail("a YAML alias refers to a node that contains it (an endless document)", node)
        size, height = known.get(key) or (0, 0)
        if not size:
            if depth > MAX_NESTING_DEPTH:
                raise fail(f"values are nested more than {MAX_NESTING_DEPTH} levels deep", node)
            open_nodes.add(key)
            size, height = 1, 1
            if isinstance(node, yaml.ScalarNode):
                size += len(node.value)
            else:
                children = (
                    node.value
                    if isinstance(node, yaml.SequenceNode)
                    else [child for pair in node.value for child in pair]
                )
                for child in children:
                    child_size, child_height = walk(child, depth + 1)
                    size, height = size + child_size, max(height, child_height + 1)
                    if size > MAX_EXPANDED_SIZE:
                        raise fail(
                            f"YAML aliases expand the document past {_size(MAX_EXPANDED_SIZE)}",
                            node,
                        )
            open_nodes.discard(key)
            known[key] = (size, height)
        if depth + height - 1 > MAX_NESTING_DEPTH:
            raise fail(f"values are nested more than {MAX_NESTING_DEPTH} levels deep", node)
        return size, height

    walk(root, 1)


def _first_tab_indent(text: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        indent = line[: len(line) - len(line.lstrip(" \t"))]
        if "\t" in indent:
            return number
    return None


def parse_documents(text: str, file: str = "<input>") -> list[tuple[dict[str, Any], int]]:
    """The YAML documents of a manifest file as (mapping, first line) pairs."""
    docs: list[tuple[dict[str, Any], int]] = []
    for doc, line in _yaml_documents(text, file):
        if not isinstance(doc, dict):
            raise errors.ManifestSyntaxError(
                f"a manifest must be a mapping with apiVersion, kind, metadata and spec; "
                f"found {type(doc).__name__}",
                errors.Where(file=file, line=line),
            )
        docs.append((doc, line))
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


def _pydantic_message(err: Any) -> str:
    msg = str(err["msg"])
    if err["type"] == "extra_forbidden":
        return "unknown field"
    if err["type"] == "missing":
        return "required field is missing"
    if err["type"] == "value_error":
        # Our own validators' messages, without pydantic's "Value error, " in front.
        return msg.removeprefix("Value error, ")
    return msg


def to_resource(doc: dict[str, Any], where: errors.Where) -> Resource:
    """Validate one manifest mapping into its API model."""
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    name = (
        (doc.get("metadata") or {}).get("name") if isinstance(doc.get("metadata"), dict) else None
    )
    if kind is not None or name is not None:
        where = where.replace(resource=f"{kind or '<no kind>'}/{name or '<unnamed>'}")
    if api_version != meta.API_VERSION:
        given = "is missing" if api_version is None else f"is {api_version!r}"
        raise errors.ManifestError(
            f"apiVersion {given}; expected {meta.API_VERSION!r}",
            where.replace(field="apiVersion"),
        )
    model = KINDS.get(str(kind))
    if model is None:
        raise errors.ManifestError(
            f"kind {kind!r} is not an Autoflow kind (expected one of {', '.join(KINDS)})",
            where.replace(field="kind"),
        )
    problems = _check_sizes(doc, where)
    if not name:
        problems.append(
            errors.Problem(
                "metadata.name is required (Kubernetes names every object)",
                where.replace(field="metadata.name"),
            )
        )
    if problems:
        raise errors.ValidationError(problems)
    try:
        return model.model_validate(doc)  # type: ignore[return-value]
    except pydantic.ValidationError as exc:
        found = []
        for err in exc.errors():
            loc = tuple(
                p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))
            )
            # pydantic reports a union (str | bool) per branch; keep the first branch only.
            loc = tuple(
                p
                for p in loc
                if p not in {"str", "bool", "int", "float", "list[any]", "constrained-str"}
            )
            step, field = _field_path(loc, doc)
            found.append(
                errors.Problem(_pydantic_message(err), where.replace(step=step, field=field))
            )
        unique = list(dict.fromkeys(found))
        raise errors.ValidationError(unique) from None


def load_text(text: str, file: str = "<input>") -> list[Resource]:
    """Every resource in a YAML text; errors name ``file``."""
    size = len(text.encode("utf-8", "surrogatepass"))
    docs = parse_documents(text, file)
    resources = [to_resource(doc, errors.Where(file=file, line=line)) for doc, line in docs]
    if size > MAX_MANIFEST_BYTES:
        raise errors.ManifestSyntaxError(
            f"the file is {_size(size)}; a manifest must stay under {_size(MAX_MANIFEST_BYTES)} "
            "(Kubernetes stores each object in etcd, which refuses large ones)",
            errors.Where(file=file),
        )
    return resources


def load_file(path: str | os.PathLike[str]) -> list[Resource]:
    """Every resource in a YAML file; errors name the file."""
    file = os.fspath(path)
    try:
        with open(file, "rb") as fh:
            raw = fh.read(MAX_MANIFEST_BYTES * 8 + 1)
    except OSError as exc:
        raise errors.ManifestError(
            f"cannot read: {exc.strerror}", errors.Where(file=file)
        ) from None
    if len(raw) > MAX_MANIFEST_BYTES * 8:
        raise errors.ManifestSyntaxError(
            f"the file is over {_size(MAX_MANIFEST_BYTES * 8)}; a manifest must stay under "
            f"{_size(MAX_MANIFEST_BYTES)}",
            errors.Where(file=file),
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise errors.ManifestSyntaxError(
            f"not UTF-8 text (byte {exc.start})", errors.Where(file=file)
        ) from None
    return load_text(text, file)
