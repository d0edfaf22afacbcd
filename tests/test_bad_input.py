"""What a user sees when a file, a manifest or an input is wrong: one readable error, no traceback.

Every case runs the real ``autoflow`` command in a subprocess, the way a user meets it, and
checks that it exits 1 with exactly one error line naming what to fix: the file (with the line
where YAML knows it), the step and the field. Every manifest case goes through one ``autoflow
validate`` of all the files (it reports every problem of every file, so each file must have
exactly one line), and the cases marked ``run`` through ``autoflow run`` as well; input cases
through ``autoflow run``. A module fixture starts all the commands at once (each costs an
interpreter start-up) and each test reads its case's result.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
TRIAGE = str(EXAMPLES / "order-triage.yaml")

HEAD = """\
apiVersion: autoflow.dev/v1alpha1
kind: Workflow
metadata: {name: wf}
spec:
"""


def workflow(body: str) -> str:
    return HEAD + body


def laughs() -> str:
    """A billion laughs: 9 aliases deep, a few hundred bytes that expand to 9**9 strings."""
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, 9)]
    return HEAD.replace("spec:\n", "\n".join(lines) + "\nspec:\n") + (
        "  steps:\n    - {id: a, uses: core.log, with: {message: *l8}}\n"
    )


@dataclasses.dataclass(frozen=True)
class Case:
    id: str
    content: str | bytes | None  # None: the file does not exist
    expected: tuple[str, ...]  # what the error line must say, besides the file name
    args: tuple[str, ...] = ()  # extra `autoflow run` arguments
    validate: bool = True  # through `autoflow validate`
    run: bool = False  # through `autoflow run`
    file: str = ""  # defaults to "<id>.yaml"
    names_file: bool = True

    @property
    def filename(self) -> str:
        return self.file or f"{self.id}.yaml"


MANIFEST_CASES = [
    Case(
        "malformed-yaml",
        workflow('  steps:\n    - id: a\n      uses: core.log\n      with: {message: "open}\n'),
        ("malformed-yaml.yaml:", "YAML syntax"),
        run=True,
    ),
    Case(
        "tab-indent",
        workflow("  steps:\n    - id: a\n\t  uses: core.noop\n"),
        ("tab-indent.yaml:7", "tab", "indentation"),
    ),
    Case(
        "list-document",
        "- apiVersion: autoflow.dev/v1alpha1\n- kind: Workflow\n",
        ("list-document.yaml:1", "must be a mapping", "list"),
        run=True,
    ),
    Case(
        "wrong-api-version",
        workflow("  steps: [{id: a, uses: core.noop}]\n").replace("v1alpha1", "v1"),
        ("field 'apiVersion'", "'autoflow.dev/v1'", "expected 'autoflow.dev/v1alpha1'"),
    ),
    Case(
        "missing-api-version",
        workflow("  steps: [{id: a, uses: core.noop}]\n").split("\n", 1)[1],
        ("field 'apiVersion'", "apiVersion is missing", "Workflow/wf"),
    ),
    Case(
        "wrong-kind",
        workflow("  steps: [{id: a, uses: core.noop}]\n").replace(
            "kind: Workflow", "kind: Workfow"
        ),
        ("field 'kind'", "'Workfow'", "Workflow"),
    ),
    Case(
        "needs-cycle",
        workflow(
            "  steps:\n"
            "    - {id: a, uses: core.noop, needs: [c]}\n"
            "    - {id: b, uses: core.noop, needs: [a]}\n"
            "    - {id: c, uses: core.noop, needs: [b]}\n"
        ),
        ("Workflow/wf", "field 'needs'", "cycle", "a", "b", "c"),
        run=True,
    ),
    Case(
        "needs-unknown",
        workflow(
            "  steps:\n"
            "    - {id: a, uses: core.noop}\n"
            "    - {id: b, uses: core.noop, needs: [nope]}\n"
        ),
        ("needs-unknown.yaml:7,", "step 'b'", "field 'needs'", "unknown step 'nope'"),
    ),
    Case(
        "expression-unknown-step",
        workflow(
            "  steps:\n"
            "    - {id: a, uses: core.noop}\n"
            '    - {id: b, uses: core.log, with: {message: "${ steps.ghost.output }"}}\n'
        ),
        ("step 'b'", "field 'with", "unknown step 'ghost'"),
    ),
    Case(
        "unknown-connector",
        workflow("  steps:\n    - {id: post, uses: fax.post}\n"),
        (
            "unknown-connector.yaml:6,",
            "step 'post'",
            "field 'uses'",
            "unknown connector 'fax'",
            "(known: ",
            " http,",
        ),
    ),
    Case(
        "unknown-action",
        workflow("  steps:\n    - {id: boom, uses: core.explode}\n"),
        ("step 'boom'", "field 'uses'", "'explode'", "delay"),
        run=True,
    ),
    Case(
        "param-type-delay",
        workflow("  steps:\n    - {id: wait, uses: core.delay, with: {duration: [1]}}\n"),
        ("param-type-delay.yaml:6,", "step 'wait'", "field 'with.duration'"),
    ),
    Case(
        "param-type-timeout",
        workflow(
            "  steps:\n"
            "    - id: call\n"
            "      uses: http.request\n"
            '      with: {url: "http://127.0.0.1/", timeout: soon}\n'
        ),
        ("param-type-timeout.yaml:8,", "step 'call'", "field 'with.timeout'", "'soon'", "duration"),
        run=True,
    ),
    Case(
        "step-timeout",
        workflow("  steps:\n    - {id: a, uses: core.noop, timeout: soon}\n"),
        ("step 'a'", "field 'timeout': 'soon' is not a duration"),
    ),
    Case(
        "step-field-typo",
        workflow(
            "  steps:\n    - {id: a, uses: core.noop}\n    - {id: b, uses: core.noop, neds: [a]}\n"
        ),
        ("step-field-typo.yaml:7,", "step 'b'", "field 'neds'", "unknown field"),
    ),
    Case(
        "expression-syntax",
        workflow(
            "  inputs: {x: {type: number, default: 1}}\n"
            "  steps:\n"
            '    - {id: add, uses: core.log, with: {message: "${ inputs.x + }"}}\n'
        ),
        ("step 'add'", "field 'with.message'", "expression", "syntax"),
    ),
    Case(
        "inline-value-300k",
        workflow(
            "  steps:\n    - id: upload\n      uses: http.request\n      with:\n"
            '        url: "http://127.0.0.1/"\n        method: POST\n'
            f'        body: "{"x" * 300 * 1024}"\n'
        ),
        ("inline-value-300k.yaml:11,", "step 'upload'", "field 'with.body'", "300 KiB"),
        run=True,
    ),
    Case(
        # Refused before parsing (a parser takes seconds and hundreds of MB on such a file),
        # still pointing at the line that makes it large.
        "inline-value-2mb",
        workflow(
            "  steps:\n    - id: upload\n      uses: http.request\n      with:\n"
            '        url: "http://127.0.0.1/"\n        method: POST\n'
            f'        body: "{"x" * 2 * 1024 * 1024}"\n'
        ),
        ("inline-value-2mb.yaml:11:", "2.0 MiB", "under 1.0 MiB", "line 11 alone"),
        run=True,
    ),
    Case(
        "duplicate-key",
        workflow(
            "  steps:\n    - {id: a, uses: core.noop}\n  steps:\n    - {id: b, uses: core.noop}\n"
        ),
        ("duplicate-key.yaml:7:", "'steps'", "twice", "line 5"),
        run=True,
    ),
    Case(
        "step-timeout-zero",
        workflow(
            "  steps:\n    - {id: a, uses: core.noop}\n    - {id: b, uses: core.noop, timeout: 0}\n"
        ),
        ("step-timeout-zero.yaml:7,", "step 'b'", "field 'timeout'", "longer than 0"),
        run=True,
    ),
    Case(
        "run-timeout-zero",
        workflow("  steps:\n    - {id: a, uses: core.noop}\n  timeout: 0s\n"),
        ("run-timeout-zero.yaml:7,", "field 'spec.timeout'", "longer than 0"),
    ),
    Case("no-such-file", None, ("no-such-file.yaml", "No such file"), run=True),
    Case("empty-file", "", ("holds no manifest",), run=True),
    Case("binary-file", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", ("not UTF-8",), run=True),
    Case(
        "alias-loop",
        HEAD + "  steps: &s [{id: a, uses: core.log, with: {message: *s}}]\n",
        ("alias-loop.yaml:", "alias", "endless"),
    ),
    Case("alias-bomb", laughs(), ("alias-bomb.yaml:", "aliases expand"), run=True),
    Case(
        "deep-nesting",
        workflow(
            "  steps:\n    - {id: a, uses: core.log, with: {message: "
            + "[" * 300
            + "]" * 300
            + "}}\n"
        ),
        ("deep-nesting.yaml:", "nested more than"),
    ),
]

REQUIRED = workflow(
    "  inputs:\n"
    "    threshold: {type: number, required: true, description: Orders at or above this are big}\n"
    "  steps:\n"
    '    - {id: a, uses: core.log, with: {message: "${ inputs.threshold }"}}\n'
)

INPUT_CASES = [
    Case(
        "missing-input",
        REQUIRED,
        ("field 'inputs.threshold'", "required input 'threshold' is missing", "big"),
        validate=False,
        run=True,
    ),
    Case(
        "input-wrong-type",
        REQUIRED,
        ("field 'inputs.threshold'", "must be a number", "'abc'"),
        args=("--input", "threshold=abc"),
        validate=False,
        run=True,
    ),
    Case(
        "input-not-finite",
        REQUIRED,
        ("field 'inputs.threshold'", "finite number"),
        args=("--input", "threshold=nan"),
        validate=False,
        run=True,
    ),
    Case(
        "input-unknown",
        REQUIRED,
        ("field 'inputs.treshold'", "unknown input 'treshold'", "threshold"),
        args=("-i", "threshold=1", "-i", "treshold=2"),
        validate=False,
        run=True,
    ),
    Case(
        "input-array-not-json",
        TRIAGE,
        ("order-triage.yaml", "field 'inputs.orders'", "must be an array"),
        args=("-i", 'orders=[{"id": 1'),
        validate=False,
        run=True,
        file=TRIAGE,
    ),
    Case(
        "input-without-value",
        REQUIRED,
        ("NAME=VALUE", "'threshold'"),
        args=("-i", "threshold"),
        validate=False,
        run=True,
        names_file=False,
    ),
    Case(
        "inputs-file-binary",
        TRIAGE,
        ("inputs.bin", "inputs file", "not UTF-8"),
        args=("--inputs-file", "inputs.bin"),
        validate=False,
        run=True,
        file=TRIAGE,
        names_file=False,
    ),
    Case(
        "inputs-file-bad-yaml",
        TRIAGE,
        ("inputs-bad.yaml:3", "inputs file", "YAML syntax"),
        args=("--inputs-file", "inputs-bad.yaml"),
        validate=False,
        run=True,
        file=TRIAGE,
        names_file=False,
    ),
    Case(
        "secrets-file-binary",
        TRIAGE,
        ("inputs.bin", "secrets file", "not UTF-8"),
        args=("--secrets", "inputs.bin"),
        validate=False,
        run=True,
        file=TRIAGE,
        names_file=False,
    ),
    Case(
        "inputs-file-alias-bomb",
        TRIAGE,
        ("bomb.yaml:", "inputs file", "aliases expand"),
        args=("--inputs-file", "bomb.yaml"),
        validate=False,
        run=True,
        file=TRIAGE,
        names_file=False,
    ),
    Case(
        "secrets-file-alias-bomb",
        TRIAGE,
        ("bomb.yaml:", "secrets file", "aliases expand"),
        args=("--secrets", "bomb.yaml"),
        validate=False,
        run=True,
        file=TRIAGE,
        names_file=False,
    ),
    Case(
        "inputs-file-duplicate-key",
        TRIAGE,
        ("dup-inputs.yaml:2:", "inputs file", "'threshold'", "twice"),
        args=("--inputs-file", "dup-inputs.yaml"),
        validate=False,
        run=True,
        file=TRIAGE,
        names_file=False,
    ),
    Case(
        "inputs-file-too-large",
        TRIAGE,
        ("big-inputs.yaml:2:", "2.0 MiB", "an inputs file must stay under 1.0 MiB"),
        args=("--inputs-file", "big-inputs.yaml"),
        validate=False,
        run=True,
        file=TRIAGE,
        names_file=False,
    ),
    Case(
        "input-deeply-nested",
        TRIAGE,
        ("field 'inputs.orders'", "nested more than 100 levels"),
        args=("-i", "orders=" + "[" * 5000 + "]" * 5000),
        validate=False,
        run=True,
        file=TRIAGE,
    ),
    Case(
        "journal-is-a-file",
        TRIAGE,
        ("inputs.bin", "journal directory"),
        args=("--journal", "inputs.bin"),
        validate=False,
        run=True,
        file=TRIAGE,
        names_file=False,
    ),
]

AUX_FILES: dict[str, bytes | str] = {
    "inputs.bin": b"\xff\xfe\x00binary\x80",
    # A few hundred bytes that expand to 9**9 strings: once a 691 MB journal.
    "bomb.yaml": laughs().split("spec:")[0].split("metadata: {name: wf}\n")[1] + "orders: *l8\n",
    "dup-inputs.yaml": "threshold: 5\nthreshold: 6\n",
    "big-inputs.yaml": f'threshold: 5\nnote: "{"x" * 2 * 1024 * 1024}"\n',
    "inputs-bad.yaml": "threshold: 5\norders: [1, 2\nescalateAbove: 3\n",
}


@dataclasses.dataclass
class Outcomes:
    validate: subprocess.CompletedProcess[str]  # of every manifest case's file at once
    runs: dict[str, subprocess.CompletedProcess[str]]


def autoflow(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTOFLOW_")}
    return subprocess.run(
        [sys.executable, "-P", "-m", "autoflow.cli.main", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Outcomes:
    workdir = tmp_path_factory.mktemp("bad-input")
    for name, data in AUX_FILES.items():
        path = workdir / name
        path.write_bytes(data) if isinstance(data, bytes) else path.write_text(data)
    cases = MANIFEST_CASES + INPUT_CASES
    for case in cases:
        if case.file == TRIAGE or case.content is None:
            continue
        path = workdir / case.filename
        if isinstance(case.content, bytes):
            path.write_bytes(case.content)
        else:
            path.write_text(case.content, encoding="utf-8")
    files = [c.filename for c in MANIFEST_CASES if c.validate]
    with concurrent.futures.ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        validate = pool.submit(autoflow, workdir, "validate", *files)
        runs = {
            c.id: pool.submit(autoflow, workdir, "run", c.filename, *c.args) for c in cases if c.run
        }
        return Outcomes(validate.result(), {cid: run.result() for cid, run in runs.items()})


def assert_says(line: str, case: Case) -> None:
    if case.names_file:
        assert Path(case.filename).name in line, line
    for expected in case.expected:
        assert expected in line, f"{expected!r} not in {line!r}"


def test_validate_exits_1_without_traceback(outcomes: Outcomes) -> None:
    result = outcomes.validate
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1
    assert result.stdout == ""  # no file is valid
    assert result.stderr.strip().endswith("problems found")


@pytest.mark.parametrize("case", MANIFEST_CASES, ids=lambda c: c.id)
def test_validate_reports_one_error(case: Case, outcomes: Outcomes) -> None:
    lines = outcomes.validate.stderr.splitlines()
    mine = [
        line
        for line in lines
        if line.startswith((f"error: {case.filename},", f"error: {case.filename}:"))
    ]
    assert len(mine) == 1, "\n".join(mine) or outcomes.validate.stderr
    assert_says(mine[0], case)


@pytest.mark.parametrize(
    "case", [c for c in MANIFEST_CASES + INPUT_CASES if c.run], ids=lambda c: c.id
)
def test_run_reports_one_error(case: Case, outcomes: Outcomes) -> None:
    """Exit 1, nothing on stdout, one error line on stderr, no traceback."""
    result = outcomes.runs[case.id]
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines[0]
    assert_says(lines[0], case)
