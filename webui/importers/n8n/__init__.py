"""``autoflow import n8n``: n8n workflow exports converted into Autoflow manifests.

Deterministic, no LLM: ``convert`` reads an export (``export``), visits the nodes in
dependency order keeping track of where their items are (``scope``), maps each node (control
nodes in ``control``, Set and conditions in ``nodes``, protocols in ``services``, SaaS in
``catalog``, triggers in ``triggers``) and each expression (``javascript`` parses,
``expressions`` writes), renders the Workflow, its Schedules and Integration stubs as YAML
(``render``), checks it with ``autoflow validate``'s code, and says in a ``report.Report``
what was converted, approximated and not converted::

    export JSON ─ export.load ─ convert.Converter.run ─ Result(yaml, documents, report)
"""

from __future__ import annotations

from typing import Any

from autoflow.webui.importers.n8n import convert as convert_mod
from autoflow.webui.importers.n8n import export
from autoflow.webui.importers.n8n.convert import Result
from autoflow.webui.importers.n8n.export import NotAnExport

__all__ = ["NotAnExport", "Result", "convert", "convert_all"]


def convert_all(data: Any, source: str = "<input>") -> list[Result]:
    """Every workflow of an export (object, list, or JSON text); ``NotAnExport`` otherwise."""
    return [convert_mod.Converter(wf, source).run() for wf in export.load(data, source)]


def convert(data: Any, source: str = "<input>", name: str | None = None) -> Result:
    """The first (usually only) workflow of an export."""
    workflows = export.load(data, source)
    return convert_mod.Converter(workflows[0], source, name).run()
