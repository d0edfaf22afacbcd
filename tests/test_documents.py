"""The one reader of YAML and JSON files: limits before parsing, duplicate keys, lines.

The command-level cases (what a user sees) are in ``test_bad_input``; these pin what the reader
promises to every caller: a too-large file never reaches the parser, ``<<`` merges are not
duplicates, brackets inside JSON strings do not count as nesting, empty documents are skipped,
and every path of a document has a line.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from autoflow.crds import errors
from autoflow.runners.definitions import documents, loader


def test_a_file_over_the_limit_is_refused_without_being_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "big.yaml"
    path.write_text("a: 1\n" + "b: [" + "1, " * (2 * 1024 * 1024) + "1]\n")

    def parser_called(*args: object, **kwargs: object) -> None:
        raise AssertionError("the parser saw a file over the limit")

    monkeypatch.setattr(yaml, "compose_all", parser_called)
    with pytest.raises(errors.ManifestSyntaxError) as caught:
        loader.load_file(path)
    assert "the file is 6.0 MiB; a manifest must stay under 1.0 MiB" in caught.value.message
    assert "line 2 alone" in caught.value.message
    assert caught.value.where.line == 2


def test_a_key_twice_is_refused_but_a_merge_may_override() -> None:
    with pytest.raises(errors.ManifestSyntaxError) as caught:
        documents.parse("a: 1\nb: 2\na: 3\n", "f.yaml", "inputs file")
    assert str(caught.value) == (
        "f.yaml:3: inputs file: key 'a' is written twice in one mapping (first on line 1); "
        "YAML would keep only the last one"
    )
    (doc,) = documents.parse("base: &b {x: 1, y: 2}\nover:\n  <<: *b\n  x: 3\n")
    assert doc.data["over"] == {"x": 3, "y": 2}


def test_json_nesting_counts_brackets_outside_strings_only() -> None:
    assert documents.parse_json('["[[[[", {"a": "]]"}]') == ["[[[[", {"a": "]]"}]
    assert documents.json_depth('{"a": [1, {"b": "[\\"["}]}') == 3
    with pytest.raises(documents.LimitExceeded, match="nested more than 100"):
        documents.parse_json("[" * 101 + "]" * 101)


def test_empty_documents_are_skipped_and_a_single_document_is_required_of_data_files(
    tmp_path: Path,
) -> None:
    assert [d.data for d in documents.parse("---\na: 1\n---\n# only a comment\n---\n")] == [
        {"a": 1}
    ]
    two = tmp_path / "inputs.yaml"
    two.write_text("a: 1\n---\nb: 2\n")
    with pytest.raises(errors.ManifestSyntaxError, match="holds 2 YAML documents; expected one"):
        documents.read_one(two, "inputs file")
    empty = tmp_path / "empty.yaml"
    empty.write_text("# nothing yet\n")
    assert documents.read_one(empty, "inputs file").data == {}


def test_a_secrets_file_syntax_error_does_not_quote_the_file(tmp_path: Path) -> None:
    path = tmp_path / "secrets.yaml"
    path.write_text('shop:\n  token: "hunter2\n')
    with pytest.raises(errors.ManifestSyntaxError) as caught:
        documents.read_one(path, "secrets file", quote=False)
    assert "hunter2" not in str(caught.value)
    assert "secrets file: YAML syntax: invalid YAML" in str(caught.value)


def test_every_path_of_a_document_has_a_line() -> None:
    (doc,) = documents.parse(
        "spec:\n  steps:\n    - id: a\n      with:\n        url: x\n    - {id: b}\n"
    )
    assert doc.line_of(["spec", "steps", 0, "with", "url"]) == 5
    assert doc.line_of(["spec", "steps", 1, "id"]) == 6
    # A path that is not there is placed at the deepest part that is.
    assert doc.line_of(["spec", "steps", 0, "with", "nope", "deeper"]) == 4
