"""``autoflow validate FILE...``: every problem in every file, before anything runs.

Each Workflow is compiled exactly as the engine and the operator compile it, so a file that
validates here is one they accept. Integrations given in any of the files are checked too:
their type must be an installed connector, and a step naming one must be of its type.
Exit code 1 when any file has a problem.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from autoflow.crds import errors, integration, workflow
from autoflow.runners import loader, plan


def integration_types(files: Sequence[str]) -> dict[str, str | None]:
    """The Integrations in the files: name to connector type (files that do not load are
    reported by ``check_file``)."""
    types: dict[str, str | None] = {}
    for path in files:
        try:
            resources = loader.load_file(path)
        except errors.AutoflowError:
            continue
        for res in resources:
            if isinstance(res, integration.Integration):
                types[res.metadata.name or ""] = res.spec.type
    return types


def check_file(
    path: str, integrations: Mapping[str, str | None] | None = None
) -> tuple[list[str], list[errors.Problem]]:
    """(what is valid, the problems) of one file; ``integrations`` as ``integration_types``."""
    ok: list[str] = []
    problems: list[errors.Problem] = []
    try:
        resources = loader.load_file(path)
    except errors.ValidationError as exc:
        return ok, exc.problems
    except errors.AutoflowError as exc:
        return ok, [errors.Problem(exc.message, exc.where)]
    for res in resources:
        if isinstance(res, workflow.Workflow):
            try:
                compiled = plan.compile_workflow(res, where=errors.Where(file=path))
            except errors.ValidationError as exc:
                problems.extend(exc.problems)
                continue
            found = plan.integration_problems(
                res, integrations or {}, errors.Where(file=path), require_all=False
            )
            if found:
                problems.extend(found)
                continue
            count = len(compiled.main.order)
            ok.append(f"{res.ref} ({count} step{'s' if count != 1 else ''})")
        elif isinstance(res, integration.Integration):
            unknown = plan.unknown_type_problem(res.metadata.name or "", res.spec.type)
            if unknown is not None:
                problems.append(
                    dataclasses.replace(unknown, where=unknown.where.replace(file=path))
                )
                continue
            ok.append(res.ref)
        else:
            ok.append(res.ref)
    return ok, problems


def _problem_json(p: errors.Problem) -> dict[str, Any]:
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
                "problems": [_problem_json(p) for p in problems],
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
