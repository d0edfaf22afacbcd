"""pydantic's validation errors in the project's words: ``errors.Problem`` s at user paths.

Every layer that validates with pydantic (the loader's schema check, a step's parameters, a
connector's Integration settings, a Schedule's spec) turns its ``ValidationError`` into
problems here, so a message reads the same wherever it comes from::

    pydantic error {loc, type, msg}
      ─ path: the keys and indexes the user wrote (``data_path``; union-branch and
        validator tags such as ``constrained-str`` or ``function-after`` left out)
      ─ message: ``unknown <noun>`` / ``required <noun> is missing`` / the validator's own
        text without pydantic's ``Value error, `` (``message``)
      ─ Problem(message, where.replace(field=<under>.<path>))

``problems`` gives one problem per path (a union's several complaints joined with ``or``);
``first`` the first error alone, for callers that report one. The errors are read as plain
mappings, so this module needs nothing of pydantic but its error format.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

from autoflow.crds import errors


class HasErrors(Protocol):
    """A pydantic ``ValidationError``, or a narrowed list of its errors."""

    def errors(self) -> Sequence[Any]: ...


def message(err: Mapping[str, Any], noun: str = "field") -> str:
    """The error's message as a user reads it."""
    if err["type"] == "extra_forbidden":
        return f"unknown {noun}"
    if err["type"] == "missing":
        return f"required {noun} is missing"
    # Our own validators' messages, without pydantic's "Value error, " in front.
    return str(err["msg"]).removeprefix("Value error, ")


def data_path(err: Mapping[str, Any], data: Any, prefix: tuple[str, ...] = ()) -> list[str | int]:
    """The error's location in the user's data, without pydantic's union-branch tags.

    pydantic locates an error inside ``str | int`` as ``("duration", "constrained-str")``;
    following the data instead keeps only the keys and indexes the user wrote.
    """
    loc = (*prefix, *err["loc"])
    node, parts = data, []
    for i, part in enumerate(loc):
        in_dict = isinstance(node, dict) and part in node
        if in_dict or (isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)):
            node = node[part]
        elif not (err["type"] == "missing" and i == len(loc) - 1):
            continue  # a union branch or validator tag, not a place in the data
        parts.append(part)
    return parts


def dotted(parts: Sequence[str | int]) -> str:
    """``["steps", 0, "with"]`` as ``steps[0].with``."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def problems(
    exc: HasErrors,
    data: Any,
    where: errors.Where,
    *,
    under: str = "",
    noun: str = "field",
    prefix: tuple[str, ...] = (),
) -> Iterator[errors.Problem]:
    """One problem per path in ``data`` (a union's several complaints become one), each at
    ``under.<path>``."""
    by_path: dict[str, list[str]] = {}
    for err in exc.errors():
        found = by_path.setdefault(dotted(data_path(err, data, prefix)), [])
        if (text := message(err, noun)) not in found:
            found.append(text)
    for path, messages in by_path.items():
        # A union (str | int) complains once per branch: "Input should be a valid string or
        # a valid integer".
        text = messages[0] + "".join(
            " or " + m.removeprefix("Input should be ") for m in messages[1:]
        )
        field = f"{under}.{path}" if under and path else (under or path)
        yield errors.Problem(text, where.replace(field=field or None))


def first(exc: HasErrors) -> tuple[str, str]:
    """(dotted location, pydantic's message) of the first error, for a one-line report."""
    err = exc.errors()[0]
    return ".".join(str(p) for p in err["loc"]), str(err["msg"])
