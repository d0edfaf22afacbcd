"""A Workflow's YAML text as the web API receives it: checked exactly as ``autoflow validate``
checks a file, so the editor, the CLI and admission report the same problems in the same
words::

    text ─ documents.parse (size, syntax, aliases, duplicate keys: one line each)
         ─ exactly one document, of kind Workflow, named as the URL says (on update)
         ─ checks.check_manifest (schema, DAG, connectors, parameters, expressions,
           the Integrations its steps name) ─► (Workflow, []) or (None, every problem)

A problem is turned into JSON as ``{path, line, message, resource, step, field}``: ``path``
is the place the CLI prints before the message (``Workflow/x, step 'a', field 'with.url'``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from autoflow.crds import errors, workflow
from autoflow.runners.definitions import checks, documents

FILE = "<workflow>"  # never a server path in a message


def problem_json(p: errors.Problem) -> dict[str, Any]:
    w = p.where
    place = str(w.replace(file=None, line=None))
    return {
        "path": place,
        "line": w.line,
        "message": p.message,
        "resource": w.resource,
        "step": w.step,
        "field": w.field,
    }


def check_workflow(
    text: str,
    *,
    namespace: str | None = None,
    name: str | None = None,
    integrations: Mapping[str, str | None] | None = None,
) -> tuple[workflow.Workflow | None, list[errors.Problem]]:
    """(the Workflow, []) when ``text`` is one valid Workflow, else (None, every problem).

    ``name``: the Workflow the URL names (an update may not rename it); ``namespace``: the
    one it goes into (a different ``metadata.namespace`` is a problem). ``integrations``:
    the namespace's Integrations by name (a step naming another one is a problem)."""
    try:
        docs = documents.parse(text, FILE)
    except errors.ValidationError as exc:
        return None, list(exc.problems)
    except errors.AutoflowError as exc:
        return None, [errors.Problem(exc.message, exc.where.replace(file=None))]
    if len(docs) != 1:
        count = f"{len(docs)} YAML documents" if docs else "no YAML document"
        return None, [errors.Problem(f"the text holds {count}; expected one Workflow")]
    doc = docs[0]
    if not isinstance(doc.data, dict):
        return None, [errors.Problem("expected a mapping (a Workflow manifest)", _at(doc.line))]
    resource, problems = checks.check_manifest(
        doc.data,
        where=errors.Where(line=doc.line),
        integrations=integrations,
        require_all=integrations is not None,
        missing="does not exist in this namespace",
        source=doc,
    )
    problems = [errors.Problem(p.message, p.where.replace(file=None)) for p in problems]
    if doc.data.get("kind") != "Workflow" and not problems:
        problems.append(errors.Problem("expected kind 'Workflow'", _at(doc.line)))
    meta_doc = doc.data.get("metadata") if isinstance(doc.data.get("metadata"), dict) else {}
    assert isinstance(meta_doc, dict)
    given_ns = meta_doc.get("namespace")
    ref = f"Workflow/{meta_doc.get('name')}"
    if namespace is not None and given_ns not in (None, namespace):
        problems.append(
            errors.Problem(
                f"metadata.namespace is {given_ns!r}, but the Workflow is saved in {namespace!r}",
                errors.Where(
                    resource=ref,
                    field="metadata.namespace",
                    line=doc.line_of(["metadata", "namespace"]),
                ),
            )
        )
    if name is not None and meta_doc.get("name") != name:
        problems.append(
            errors.Problem(
                f"metadata.name is {meta_doc.get('name')!r}; a Workflow cannot be renamed "
                f"(this is {name!r}): create a new one instead",
                errors.Where(
                    resource=ref, field="metadata.name", line=doc.line_of(["metadata", "name"])
                ),
            )
        )
    problems = sorted(dict.fromkeys(problems), key=lambda p: p.where.line or 0)
    if problems or not isinstance(resource, workflow.Workflow):
        return None, problems
    return resource, []


def _at(line: int) -> errors.Where:
    return errors.Where(line=line)
