"""The template gallery: the ready-made Workflows of ``examples/templates`` as the web UI lists
them.

``webui/templates`` links to ``examples/templates`` and ships in the package (package data),
so an installed Autoflow serves the same files the repository tests. Each file is read as
it is written; the first Workflow's annotations describe it (docs/templates.md)::

    autoflow.dev/template-title, -description, -category, -integrations, -trigger

``templates(directory)`` gives one ``Template`` per file, ordered by title; the text is the
whole file (the Workflow, its Schedules and Integration stubs), for the UI to split.
"""

from __future__ import annotations

import dataclasses
import pathlib
from importlib import resources
from typing import Any

import yaml

PREFIX = "autoflow.dev/template-"


@dataclasses.dataclass(frozen=True, slots=True)
class Template:
    name: str  # the file's stem
    title: str
    description: str
    category: str | None
    integrations: list[str]  # connector types, for the gallery's badges
    trigger: str | None
    workflow: str  # the first Workflow's metadata.name
    yaml: str

    def as_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def shipped() -> pathlib.Path:
    """The templates that come with Autoflow."""
    return pathlib.Path(str(resources.files("autoflow.webui") / "templates"))


def read(path: pathlib.Path) -> Template | None:
    """The template in ``path``; None for a file without a Workflow."""
    text = path.read_text(encoding="utf-8")
    docs = [d for d in yaml.safe_load_all(text) if isinstance(d, dict)]
    first = next((d for d in docs if d.get("kind") == "Workflow"), None)
    if first is None:
        return None
    meta = first.get("metadata") or {}
    notes = meta.get("annotations") or {}
    spec = first.get("spec") or {}

    def note(key: str) -> str | None:
        value = notes.get(PREFIX + key)
        return str(value) if value is not None else None

    listed = note("integrations") or ""
    return Template(
        name=path.stem,
        title=note("title") or str(meta.get("name") or path.stem),
        description=note("description") or str(spec.get("description") or ""),
        category=note("category"),
        integrations=[t.strip() for t in listed.split(",") if t.strip()],
        trigger=note("trigger"),
        workflow=str(meta.get("name") or ""),
        yaml=text,
    )


def templates(directory: pathlib.Path | None = None) -> list[Template]:
    found = [read(p) for p in sorted((directory or shipped()).glob("*.yaml"))]
    return sorted((t for t in found if t is not None), key=lambda t: t.title.lower())
