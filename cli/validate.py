"""``autoflow validate FILE...``: every problem in every file, before anything runs.

Each document is checked by ``checks.check_manifest``, which compiles a Workflow exactly as the
engine and the operator do, so a file that validates here is one they accept. Every problem of
every document is reported, each at its own line. Integrations given in any of the files are
checked too: their type must be an installed connector, a step naming one must be of its type,
and when any Integration is given, a step naming one that is not given is a problem.
Exit code 1 when any file has a problem.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from autoflow.crds import errors, workflow
from autoflow.runners.definitions import checks, loader
from autoflow.runners.definitions import integration_checks as plan


def integration_types(files: Sequence[str]) -> dict[str, str | None]:
    """The Integrations in the files: name to connector type (files that do not load are
    reported by ``check_file``)."""
    types: dict[str, str | None] = {}
    for path in files:
        try:
            docs = loader.read_manifests(path)
        except errors.AutoflowError:
            continue
        for doc in docs:
            name = (
                (doc.data.get("metadata") or {}) if doc.data.get("kind") == "Integration" else None
            )
            if isinstance(name, dict) and isinstance(name.get("name"), str):
                spec = doc.data.get("spec")
                type_ = spec.get("type") if isinstance(spec, dict) else None
                types[name["name"]] = type_ if isinstance(type_, str) else None
    return types


def check_file(
    path: str, integrations: Mapping[str, str | None] | None = None
) -> tuple[list[str], list[errors.Problem]]:
    """(what is valid, the problems) of one file. ``integrations`` as ``integration_types``:
    when it names any, a step naming an Integration that is not among them is a problem."""
    ok: list[str] = []
    problems: list[errors.Problem] = []
    try:
        docs = loader.read_manifests(path)
    except errors.ValidationError as exc:
        return ok, exc.problems
    except errors.AutoflowError as exc:
        return ok, [errors.Problem(exc.message, exc.where)]
    for doc in docs:
        resource, found = checks.check_manifest(
            doc.data,
            where=errors.Where(file=path, line=doc.line),
            integrations=integrations,
            require_all=bool(integrations),
            missing=plan.NOT_GIVEN,
            source=doc,
        )
        # In the order of the file, as someone fixing them reads it.
        problems += sorted(found, key=lambda p: p.where.line or 0)
        if found or resource is None:
            continue
        if isinstance(resource, workflow.Workflow):
            count = len(resource.spec.steps)
            ok.append(f"{resource.ref} ({count} step{'s' if count != 1 else ''})")
        else:
            ok.append(resource.ref)
    return ok, problems


def problem_json(p: errors.Problem) -> dict[str, Any]:
    """A problem as JSON: the parts of where it is that are known, and the message."""
    w = p.where
    found = {
        "file": w.file,
        "line": w.line,
        "resource": w.resource,
        "step": w.step,
        "field": w.field,
    }
    return {**{k: v for k, v in found.items() if v is not None}, "message": p.message}


def main(files: Sequence[str], output: str) -> int:
    report: list[dict[str, Any]] = []
    failed = False
    count = 0
    types = integration_types(files)
    for path in files:
        ok, problems = check_file(path, types)
        failed = failed or bool(problems)
        count += len(problems)
        report.append(
            {
                "file": path,
                "valid": not problems,
                "resources": ok,
                "problems": [problem_json(p) for p in problems],
            }
        )
        if output == "text":
            for problem in problems:
                print(f"error: {problem}", file=sys.stderr)
            if not problems:
                print(f"ok {path}: {', '.join(ok)}")
    if output == "json":
        print(json.dumps({"valid": not failed, "files": report}, indent=2))
    elif failed:
        print(f"{count} problem{'s' if count != 1 else ''} found", file=sys.stderr)
    return 1 if failed else 0
