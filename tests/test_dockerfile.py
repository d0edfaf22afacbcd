"""The Dockerfile, checked without a Docker engine: what it copies exists, and its install
steps make a working ``autoflow``.

No Docker engine runs here, so the image is never built. Instead the tests read the
Dockerfile and

- check every ``COPY`` source exists in a clean checkout and survives ``.dockerignore``, and
  that every component ``autoflow/`` links to is copied (a new component left out of the
  image would otherwise be a dangling symlink found in production);
- check the final stage: non-root numeric user, exec-form ``ENTRYPOINT ["autoflow"]``, and the
  environment that keeps a read-only root filesystem working;
- run the ``pip`` steps of each stage in fresh virtual environments, from a clean checkout,
  with the container paths mapped to temporary directories, then run ``autoflow --help`` and
  ``autoflow run examples/order-triage.yaml`` from the result and check that running it wrote
  nothing into the installation.

"Clean checkout": the files git would put in a commit of this working tree (tracked and
untracked, minus what .gitignore drops: ``.venv``, ``*.egg-info``, ``__pycache__``), copied to
a temporary directory. In CI, a fresh clone, that is exactly ``git clone``; during development
it also covers changes not committed yet, which a plain clone of HEAD would miss.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
NONROOT_UID = 65532


@dataclasses.dataclass(frozen=True)
class Instruction:
    stage: int  # 0 for the first FROM
    command: str  # upper case: FROM, COPY, RUN, ...
    args: str  # the rest of the logical line, continuations joined


def parse(text: str) -> list[Instruction]:
    """Dockerfile instructions with line continuations joined and comments dropped."""
    logical: list[str] = []
    current = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    if current:
        logical.append(current)
    found: list[Instruction] = []
    stage = -1
    for line in logical:
        command, _, args = line.partition(" ")
        command = command.upper()
        if command == "FROM":
            stage += 1
        found.append(Instruction(stage, command, args.strip()))
    return found


def instructions() -> list[Instruction]:
    return parse(DOCKERFILE.read_text())


def flags_and_words(args: str) -> tuple[dict[str, str], list[str]]:
    """``--flag=value`` options first, then the words (shell-split)."""
    words = shlex.split(args)
    flags: dict[str, str] = {}
    while words and words[0].startswith("--"):
        key, _, value = words.pop(0)[2:].partition("=")
        flags[key] = value
    return flags, words


def env_of(stage_instructions: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in stage_instructions:
        if ins.command == "ENV":
            for word in shlex.split(ins.args):
                key, _, value = word.partition("=")
                env[key] = value
    return env


def final_stage() -> list[Instruction]:
    all_ = instructions()
    last = max(i.stage for i in all_)
    return [i for i in all_ if i.stage == last]


# -- the build context ----------------------------------------------------------------------


def checkout_files() -> list[str]:
    """Paths a commit of this working tree would hold (files and symlinks that exist)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted(p for p in listed.split("\0") if p and os.path.lexists(REPO / p))


def clean_checkout(target: Path) -> Path:
    """Copies the checkout's files (symlinks as symlinks) into ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    archive = target.parent / "checkout.tar"
    with tarfile.open(archive, "w") as tar:
        for path in checkout_files():
            tar.add(REPO / path, arcname=path, recursive=False)
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="tar")
    archive.unlink()
    return target


def _pattern(glob: str) -> re.Pattern[str]:
    out = ""
    i = 0
    while i < len(glob):
        if glob.startswith("**", i):
            out += ".*"
            i += 2
            if glob.startswith("/", i):
                out += "/?"
                i += 1
            continue
        char = glob[i]
        out += {"*": "[^/]*", "?": "[^/]"}.get(char, re.escape(char))
        i += 1
    return re.compile(out + r"\Z")


def dockerignore_rules() -> list[tuple[bool, re.Pattern[str]]]:
    """(exclude?, pattern) in order; as Docker does, the last rule that matches decides."""
    rules = []
    for raw in (REPO / ".dockerignore").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        glob = line.lstrip("!").strip("/")
        rules.append((not negated, _pattern(glob)))
    return rules


def in_context(path: str, rules: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Whether ``path`` reaches the build context (a rule on a directory covers its files)."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for exclude, pattern in rules:
        if any(pattern.match(p) for p in prefixes):
            excluded = exclude
    return not excluded


def copy_sources() -> list[str]:
    sources = []
    for ins in instructions():
        if ins.command not in {"COPY", "ADD"}:
            continue
        flags, words = flags_and_words(ins.args)
        if "from" in flags:
            continue  # from another stage, not the context
        sources += [w.rstrip("/") or "." for w in words[:-1]]
    return sources


def test_every_copy_source_is_in_a_clean_checkout_and_the_build_context() -> None:
    files = checkout_files()
    rules = dockerignore_rules()
    sources = copy_sources()
    assert sources, "the Dockerfile copies nothing"
    for source in sources:
        under = [f for f in files if f == source or f.startswith(source + "/")]
        assert under, f"COPY {source}: not in a clean checkout (is it committed?)"
        left_out = [f for f in under if not in_context(f, rules)]
        assert not left_out, f"COPY {source}: .dockerignore excludes {left_out[:5]}"


def test_every_component_package_is_copied() -> None:
    sources = set(copy_sources())
    for link in sorted((REPO / "autoflow").iterdir()):
        if link.is_symlink():
            target = os.path.normpath(Path("autoflow", os.readlink(link)))
            assert target in sources, f"autoflow/{link.name} -> {target}, which is not copied"


def test_dockerignore_matching() -> None:
    rules = [(True, _pattern("*")), (False, _pattern("crds")), (True, _pattern("**/__pycache__"))]
    assert in_context("crds/run.py", rules)
    assert not in_context("crds/__pycache__/run.cpython-311.pyc", rules)
    assert not in_context("tests/test_crds.py", rules)


def test_the_final_stage_runs_as_nonroot_on_a_read_only_root() -> None:
    stage = final_stage()
    froms = [i.args for i in instructions() if i.command == "FROM"]
    assert len(froms) >= 2, "a multi-stage build: wheels in one stage, install in the next"
    args = {
        i.args.partition("=")[0]: i.args.partition("=")[2]
        for i in instructions()
        if i.command == "ARG" and i.stage == -1
    }
    assert args.get("PYTHON_IMAGE") == "python:3.11-slim"
    assert all(f.split()[0] == "${PYTHON_IMAGE}" for f in froms)
    (user,) = [i.args for i in stage if i.command == "USER"]
    assert user.split(":") == [str(NONROOT_UID), str(NONROOT_UID)]
    (entrypoint,) = [i.args for i in stage if i.command == "ENTRYPOINT"]
    assert json.loads(entrypoint) == ["autoflow"]
    env = env_of(stage)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["HOME"] == env["TMPDIR"] == "/tmp"
    assert not [i for i in stage if i.command in {"COPY", "ADD"}], "no source in the image"


# -- the install steps, for real -------------------------------------------------------------


def _venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-P", "-m", "venv", str(path)], check=True)
    return path / "bin" / "python"


def _pip_steps(stage: int) -> list[tuple[str, list[str]]]:
    """(the stage's WORKDIR, argv) of every pip command in the stage's RUN lines."""
    steps = []
    workdir = "/"
    for ins in instructions():
        if ins.stage != stage:
            continue
        if ins.command == "WORKDIR":
            workdir = ins.args
        if ins.command != "RUN":
            continue
        _, words = flags_and_words(ins.args)
        command: list[str] = []
        for word in [*words, "&&"]:
            if word not in {"&&", ";"}:
                command.append(word)
                continue
            if "pip" in command:
                steps.append((workdir, command))
            command = []
    return steps


def _localize(argv: list[str], python: Path, paths: dict[str, Path]) -> list[str]:
    """The container command for this machine: its python, its paths mapped to temp dirs."""
    assert argv[0] == "python", f"install steps call `python -P -m pip ...`, not {argv}"
    out = [str(python)]
    for word in argv[1:]:
        for container, local in paths.items():
            if word == container or word.startswith(container + "/"):
                word = str(local) + word[len(container) :]
        out.append(word)
    return out


def _files(root: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in root.rglob("*") if not p.is_symlink()}


def test_install_steps_make_a_working_autoflow(tmp_path: Path) -> None:
    """The Dockerfile's pip steps in fresh venvs, then ``autoflow`` from the result."""
    stages = sorted({i.stage for i in instructions() if i.stage >= 0})
    build, final = stages[0], stages[-1]
    source = clean_checkout(tmp_path / "src")
    wheels = tmp_path / "wheels"
    build_python = _venv(tmp_path / "build-venv")
    image = tmp_path / "image-venv"
    image_python = _venv(image)
    for stage, python in ((build, build_python), (final, image_python)):
        steps = _pip_steps(stage)
        assert steps, f"stage {stage} has no pip step"
        for workdir, argv in steps:
            command = _localize(argv, python, {"/wheels": wheels, workdir: source})
            done = subprocess.run(
                command,
                cwd=source if stage == build else tmp_path,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert done.returncode == 0, f"{' '.join(argv)}:\n{done.stdout}\n{done.stderr}"
    assert [w.name for w in wheels.glob("autoflow-*.whl")], "stage 1 built no autoflow wheel"

    home = tmp_path / "home"
    home.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))},
        **env_of(final_stage()),
        "HOME": str(home),
        "TMPDIR": str(home),
        "PATH": f"{image / 'bin'}:{os.environ.get('PATH', '')}",
    }
    autoflow = str(image / "bin" / "autoflow")
    before = _files(image)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [autoflow, *args], cwd=source, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"autoflow {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
        return done

    assert "operator" in run("--help").stdout
    run("operator", "--help")
    run("runner", "--help")
    run("connectors", "list")  # every connector the entry points name, with its data files
    done = run("run", "examples/order-triage.yaml")
    assert "Succeeded" in done.stdout + done.stderr
    assert _files(image) == before, "running autoflow wrote into its installation"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "FROM a AS b\nRUN x \\\n  # note\n  && y\n",
            [(0, "FROM", "a AS b"), (0, "RUN", "x && y")],
        ),
        (
            "ARG X=1\nFROM ${X}\nUSER 1\n",
            [(-1, "ARG", "X=1"), (0, "FROM", "${X}"), (0, "USER", "1")],
        ),
    ],
)
def test_parse(text: str, expected: list[tuple[int, str, str]]) -> None:
    assert [(i.stage, i.command, " ".join(i.args.split())) for i in parse(text)] == expected
