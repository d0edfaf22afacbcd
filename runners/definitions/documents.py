"""Reading the YAML and JSON Autoflow is given, with one set of limits for every file.

Manifests (``autoflow validate``, ``autoflow run``), inputs files (``--inputs-file``) and
secrets files (``--secrets``) all go through ``read_file`` (or ``parse`` for text in hand)::

    bytes ─ size ≤ 1 MiB, checked before parsing ─ UTF-8 ─ yaml.compose_all (C parser)
          ─ per document: aliases and nesting bounded, duplicate keys refused
          ─ construct ─ Document(data, line, node)

JSON is read by the same path (YAML is a superset of the JSON people write), so a JSON file
gets the same limits and the same messages. A ``--input NAME=VALUE`` value holding JSON is
checked by ``parse_json`` with the same nesting limit before ``json.loads`` sees it.

A ``Document`` keeps its node tree so ``line_of`` can say on which line any path of the data
was written: validation problems are reported at their own line, not the document's first.
Whatever is wrong comes back as a ``ManifestSyntaxError`` naming the file and line (and what the
file is for, when it is not a manifest); a YAML traceback never reaches the user.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator, Sequence
from typing import Any

import yaml

from autoflow.crds import errors

# etcd refuses objects over about 1.5 MB; a manifest that large could never be applied. Inputs
# and secrets become part of a run (its journal, its WorkflowRun) and get the same bound.
MAX_FILE_BYTES = 1024 * 1024
# YAML aliases let a small file describe a huge (or endless) document; everything after the
# parser walks the expanded tree, so its size and depth are bounded before anything else runs.
MAX_EXPANDED_SIZE = 8 * MAX_FILE_BYTES  # nodes plus scalar characters
MAX_NESTING_DEPTH = 100

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_NULL_TAG = "tag:yaml.org,2002:null"


def size_text(n: int) -> str:
    """A byte count as people read it: ``2.0 MiB``, ``256 KiB``."""
    return f"{n / (1024 * 1024):.1f} MiB" if n >= 1024 * 1024 else f"{n / 1024:.0f} KiB"


@dataclasses.dataclass(slots=True)
class Document:
    """One YAML document: its data, the line it starts on, and its node tree (for lines)."""

    data: Any
    line: int
    node: yaml.Node | None = None

    def line_of(self, path: Sequence[str | int]) -> int:
        """The line where ``path`` (keys and list indexes into ``data``) was written, or of
        the deepest part of it that exists."""
        node, line = self.node, self.line
        for part in path:
            found = _child_node(node, part)
            if found is None:
                break
            node, line = found
        return line


def _child_node(node: yaml.Node | None, key: str | int) -> tuple[yaml.Node, int] | None:
    """The node at ``key`` and its line; a mapping entry's line is its key's (a block value
    starts on the line below)."""
    if isinstance(node, yaml.SequenceNode):
        if isinstance(key, int) and 0 <= key < len(node.value):
            child: yaml.Node = node.value[key]
            return child, child.start_mark.line + 1
    elif isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(key):
                return value_node, key_node.start_mark.line + 1
    return None


def _problem(
    message: str, file: str, what: str | None, line: int | None = None
) -> errors.ManifestSyntaxError:
    text = f"{what}: {message}" if what else message
    return errors.ManifestSyntaxError(text, errors.Where(file=file, line=line))


def _longest_line(raw: bytes) -> tuple[int, int]:
    """(line number, size) of the longest line: where a too-large file's bulk most likely is."""
    best, best_size, number, start = 1, 0, 1, 0
    while True:
        end = raw.find(b"\n", start)
        stop = len(raw) if end < 0 else end
        if stop - start > best_size:
            best, best_size = number, stop - start
        if end < 0:
            return best, best_size
        number, start = number + 1, end + 1


def check_size(raw: bytes, file: str, what: str | None = None, total: int = 0) -> None:
    """Refuse text over ``MAX_FILE_BYTES`` before any parser sees it (a parser would take
    seconds and hundreds of megabytes on a few megabytes of YAML). ``raw`` may be the first
    part of a file of ``total`` bytes."""
    if len(raw) <= MAX_FILE_BYTES:
        return
    line, size = _longest_line(raw)
    hint = ""
    if size > MAX_FILE_BYTES // 2:
        # One huge line is one huge value: name its line, the user can find it there.
        hint = f" (line {line} alone is {size_text(size)}: keep large data outside the file)"
    kind = "a manifest" if what is None else f"an {what}" if what[0] in "aeiou" else f"a {what}"
    raise _problem(
        f"the file is {size_text(max(total, len(raw)))}; {kind} must stay under "
        f"{size_text(MAX_FILE_BYTES)}{hint}",
        file,
        None,
        line if hint else None,
    )


def read_bytes(path: str | os.PathLike[str], what: str | None = None) -> tuple[str, str]:
    """(file name, text) of a file, refused when too large or not UTF-8, before parsing."""
    file = os.fspath(path)
    try:
        with open(file, "rb") as fh:
            total = os.fstat(fh.fileno()).st_size
            # One byte past the limit tells it is too large; a few MiB more find the line
            # that makes it so. The rest is never read.
            raw = fh.read(MAX_FILE_BYTES + 1)
            if len(raw) > MAX_FILE_BYTES:
                raw += fh.read(4 * MAX_FILE_BYTES)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if isinstance(exc, IsADirectoryError):
            reason = "it is a directory"
        prefix = f"cannot read {what}" if what else "cannot read"
        raise errors.ManifestError(f"{prefix}: {reason}", errors.Where(file=file)) from None
    check_size(raw, file, what, total)
    try:
        return file, raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _problem(f"not UTF-8 text (byte {exc.start})", file, what) from None


def read_file(
    path: str | os.PathLike[str], what: str | None = None, *, quote: bool = True
) -> list[Document]:
    """Every non-empty document of a YAML or JSON file. ``what`` says what the file is for
    ("inputs file") in messages, None for manifests; without ``quote`` a syntax error gives
    only its line, never the parser's words, which can quote the text (a secrets file)."""
    file, text = read_bytes(path, what)
    return parse(text, file, what, quote=quote)


def read_one(path: str | os.PathLike[str], what: str, *, quote: bool = True) -> Document:
    """The one document of a data file (inputs, secrets); an empty file is an empty mapping."""
    docs = read_file(path, what, quote=quote)
    if len(docs) > 1:
        raise _problem(
            f"holds {len(docs)} YAML documents; expected one", os.fspath(path), what, docs[1].line
        )
    return docs[0] if docs else Document({}, 1)


def parse(
    text: str, file: str = "<input>", what: str | None = None, *, quote: bool = True
) -> list[Document]:
    """The non-empty documents of a YAML text; an empty document (a trailing ``---``, a
    comment-only part) is skipped as ``kubectl apply`` skips it."""
    check_size(text.encode("utf-8", "surrogatepass"), file, what)
    return list(_documents(text, file, what, quote))


def _documents(text: str, file: str, what: str | None, quote: bool) -> Iterator[Document]:
    try:
        for node in yaml.compose_all(text, Loader=_Loader):
            if node is None or (isinstance(node, yaml.ScalarNode) and node.tag == _NULL_TAG):
                continue
            _check_tree(node, file, what)
            data = _Loader("").construct_document(node)
            yield Document(data, node.start_mark.line + 1, node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = (exc.problem if quote else None) or "invalid YAML"
        tab_line = _first_tab_indent(text)
        if tab_line is not None:
            problem, line = "a tab is used for indentation; YAML allows only spaces", tab_line
        raise _problem(f"YAML syntax: {problem}", file, what, line) from None
    except yaml.YAMLError:
        # The error text can quote the file (a secrets file): say only that it is not YAML.
        raise _problem("not valid YAML", file, what) from None


def _check_tree(root: yaml.Node, file: str, what: str | None) -> None:
    """Refuse aliases that loop or expand past the limits, over-deep nesting and a key written
    twice in one mapping (YAML keeps the last silently: a second ``steps:`` drops the first)."""
    known: dict[int, tuple[int, int]] = {}  # node → (expanded size, height)
    open_nodes: set[int] = set()

    def fail(message: str, node: yaml.Node) -> errors.ManifestSyntaxError:
        return _problem(message, file, what, node.start_mark.line + 1)

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
                children: list[yaml.Node] = []
            elif isinstance(node, yaml.SequenceNode):
                children = node.value
            else:
                assert isinstance(node, yaml.MappingNode)
                _check_keys(node, fail)
                children = [child for pair in node.value for child in pair]
            for child in children:
                child_size, child_height = walk(child, depth + 1)
                size, height = size + child_size, max(height, child_height + 1)
                if size > MAX_EXPANDED_SIZE:
                    raise fail(
                        f"YAML aliases expand the document past {size_text(MAX_EXPANDED_SIZE)}",
                        node,
                    )
            open_nodes.discard(key)
            known[key] = (size, height)
        if depth + height - 1 > MAX_NESTING_DEPTH:
            raise fail(f"values are nested more than {MAX_NESTING_DEPTH} levels deep", node)
        return size, height

    walk(root, 1)


def _check_keys(node: yaml.MappingNode, fail: Any) -> None:
    seen: dict[tuple[str, str], int] = {}
    for key_node, _ in node.value:
        # ``<<`` merges another mapping in, and the keys written here override it on purpose.
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
            continue
        ident = (key_node.tag, key_node.value)
        line = key_node.start_mark.line + 1
        if ident in seen:
            raise fail(
                f"key {key_node.value!r} is written twice in one mapping (first on line "
                f"{seen[ident]}); YAML would keep only the last one",
                key_node,
            )
        seen[ident] = line


def _first_tab_indent(text: str) -> int | None:
    for number, line in enumerate(text.splitlines(), start=1):
        indent = line[: len(line) - len(line.lstrip(" \t"))]
        if "\t" in indent:
            return number
    return None


class LimitExceeded(ValueError):
    """A value is larger or nested deeper than the limits allow."""


def json_depth(text: str) -> int:
    """How deeply a JSON text nests arrays and objects (brackets inside strings not counted)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def parse_json(text: str) -> Any:
    """A JSON value given as text (``--input items=[...]``), with the limits files have.

    Raises ``LimitExceeded`` over the limits (``json.loads`` alone would recurse until
    Python's stack ends on a deeply nested value), ValueError when it is not JSON.
    """
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FILE_BYTES:
        limit = size_text(MAX_FILE_BYTES)
        raise LimitExceeded(f"the value is {size_text(size)}; the limit is {limit}")
    if json_depth(text) > MAX_NESTING_DEPTH:
        raise LimitExceeded(f"values are nested more than {MAX_NESTING_DEPTH} levels deep")
    return json.loads(text)
