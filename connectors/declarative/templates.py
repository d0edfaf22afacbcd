"""The small languages of a declarative connector: templates, JSON paths, form encoding, links.

All pure functions over plain data; the engine (``declarative``) feeds them a step's
parameters and the service's responses.

Templates. A string may hold ``{name}`` placeholders (``{{`` and ``}}`` are literal braces)::

    "/repos/{owner}/{repo}/issues"   in a path: each value URL-encoded (``render_path``)
    "{labels}"                        a whole value: the parameter's value with its type
    "Bug: {title}"                    in text: the value as text
    {"$merge": "{properties}"}        in a mapping: the object parameter's entries, added

A parameter is *unset* when it is missing or null. A mapping entry or list element whose
template names parameters and none of them is set is left out, so optional parameters
disappear from bodies and queries instead of turning into ``null``. An unset parameter inside
text beside a set one renders as nothing.

JSON paths are dotted (``paging.next.after``, ``errors.0.message``); ``*`` maps over a list
(``errors.*.message``) and the empty path is the whole document.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Any

MERGE_KEY = "$merge"
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([A-Za-z_][A-Za-z0-9_]*)\}")
_WHOLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class _Missing:
    """What a template renders to when everything it names is unset."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def placeholders(template: Any) -> set[str]:
    """Every parameter name a template (string, or data holding strings) refers to."""
    found: set[str] = set()
    for text in _strings(template):
        found.update(m.group(1) for m in _PLACEHOLDER.finditer(text) if m.group(1))
    return found


def render(template: Any, values: Mapping[str, Any]) -> Any:
    """The template with parameter values filled in, or ``MISSING`` (see the module doc)."""
    names = placeholders(template)
    if names and all(values.get(name) is None for name in names):
        return MISSING
    if isinstance(template, str):
        whole = _WHOLE.fullmatch(template)
        return values[whole.group(1)] if whole else render_text(template, values)
    if isinstance(template, Mapping):
        return render_entries(template, values)
    if isinstance(template, list):
        return [item for item in (render(t, values) for t in template) if item is not MISSING]
    return template


def render_entries(template: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """A mapping's entries rendered one by one; the mapping itself is never left out.

    For the top level of a query, headers or body, where constant entries (``wait: "true"``)
    stay even when every parameter beside them is unset.
    """
    out: dict[str, Any] = {}
    extra = render(template.get(MERGE_KEY), values)
    if isinstance(extra, Mapping):
        out.update(extra)
    for key, value in template.items():
        if key != MERGE_KEY and (rendered := render(value, values)) is not MISSING:
            out[str(key)] = rendered
    return out


def render_text(template: str, values: Mapping[str, Any], quote: bool = False) -> str:
    """Text with placeholders replaced by values as text; ``quote`` URL-encodes each value."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return match.group(0)[0]
        text = as_text(values.get(name))
        return urllib.parse.quote(text, safe="") if quote else text

    return _PLACEHOLDER.sub(replace, template)


def as_text(value: Any) -> str:
    """How a value reads inside text, a query string or a form: JSON's spelling, unquoted."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _strings(template: Any) -> Iterable[str]:
    if isinstance(template, str):
        yield template
    elif isinstance(template, Mapping):
        for key, value in template.items():
            yield from _strings(key)
            yield from _strings(value)
    elif isinstance(template, list):
        for item in template:
            yield from _strings(item)


# JSON paths


def pick(document: Any, path: str) -> Any:
    """The value at a dotted path, or None when any step of it is missing."""
    if not path:
        return document
    return _pick(document, path.split("."))


def _pick(value: Any, parts: list[str]) -> Any:
    for index, part in enumerate(parts):
        if part == "*":
            if not isinstance(value, list):
                return None
            rest = parts[index + 1 :]
            return [found for item in value if (found := _pick(item, rest)) is not None]
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.lstrip("-").isdigit():
            position = int(part)
            value = value[position] if -len(value) <= position < len(value) else None
        else:
            return None
        if value is None:
            return None
    return value


def describe(value: Any) -> str:
    """An error message found in a response body, as one line of text."""
    if value is None:
        return ""
    if isinstance(value, list):
        return "; ".join(text for item in value if (text := describe(item)))
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {text}" for k, v in value.items() if (text := describe(v)))
    return as_text(value).strip()


# Bodies and headers


def form_fields(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Nested data as form fields the way Stripe and Rails read them.

    ``{"metadata": {"order": 7}, "types": ["card"]}`` → ``metadata[order]=7&types[0]=card``.
    """
    fields: list[tuple[str, str]] = []

    def add(key: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, Mapping):
            for sub, inner in value.items():
                add(f"{key}[{sub}]", inner)
        elif isinstance(value, list):
            for index, inner in enumerate(value):
                add(f"{key}[{index}]", inner)
        else:
            fields.append((key, as_text(value)))

    for key, value in data.items():
        add(str(key), value)
    return fields


def query_fields(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Query parameters: a list repeats the parameter, null leaves it out."""
    fields: list[tuple[str, str]] = []
    for key, value in data.items():
        for item in value if isinstance(value, list) else [value]:
            if item is not None:
                fields.append((str(key), as_text(item)))
    return fields


_LINK = re.compile(r"<([^>]*)>((?:\s*;\s*[^;,]+)*)")
_LINK_PARAM = re.compile(r';\s*([A-Za-z*]+)\s*=\s*"?([^";]*)"?')


def links(header: str) -> dict[str, str]:
    """An RFC 8288 (RFC 5988) ``Link`` header as ``{rel: url}``."""
    found: dict[str, str] = {}
    for match in _LINK.finditer(header or ""):
        for name, value in _LINK_PARAM.findall(match.group(2)):
            if name.lower() == "rel":
                for rel in value.split():
                    found.setdefault(rel.lower(), match.group(1))
    return found
