"""``autoflow run``: run a workflow in this process with live per-step progress.

Progress lines go to stderr on a terminal (or when asked); the result goes to stdout, as text
or, with ``--output json``, as one JSON document a script can read. Ctrl-C cancels the run
cleanly (onError and finally steps still run, the journal records the cancellation).
Integration limits are shared through Redis when ``AUTOFLOW_REDIS_URL`` is set
(``runners.limits``), else kept in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from typing import Any, TextIO

import yaml

from autoflow.crds import errors
from autoflow.runners import engine, local, logs

_MARKS = {"Succeeded": "✓", "Failed": "✗", "Skipped": "–", "Cancelled": "■"}


class Progress(engine.Observer):
    """One line per step event, written as it happens."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def step_retrying(self, step: str, attempt: int, error: str, delay: float) -> None:
        self.out.write(
            f"  ↻ {step}: attempt {attempt} failed ({error}); retrying in {delay:.1f}s\n"
        )
        self.out.flush()

    def step_finished(self, result: engine.StepResult) -> None:
        mark = _MARKS.get(result.phase, "?")
        took = ""
        if result.started_at and result.finished_at:
            took = f"  {(result.finished_at - result.started_at) * 1000:.0f} ms"
        detail = (
            f": {result.error}"
            if result.error
            else (f" ({result.message})" if result.message else "")
        )
        self.out.write(f"  {mark} {result.id}{took}{detail}\n")
        self.out.flush()


def _inputs(args: argparse.Namespace) -> tuple[dict[str, Any], bool]:
    values: dict[str, Any] = {}
    if args.inputs_file:
        try:
            with open(args.inputs_file, encoding="utf-8") as fh:
                loaded = yaml.safe_load(fh) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise errors.InputError(
                f"cannot read inputs file: {_read_problem(exc)}",
                errors.Where(file=args.inputs_file, line=_problem_line(exc)),
            ) from None
        if not isinstance(loaded, dict):
            raise errors.InputError(
                "an inputs file is a mapping of input names to values",
                errors.Where(file=args.inputs_file),
            )
        values.update(loaded)
    for item in args.input:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise errors.InputError(f"--input takes NAME=VALUE; got {item!r}")
        values[name] = value
    # Command-line values arrive as text and are converted to the declared types.
    return values, bool(args.input)


def _read_problem(exc: Exception) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte {exc.start})"
    problem = getattr(exc, "problem", None)
    return f"YAML syntax: {problem}" if problem else "not valid YAML"


def _problem_line(exc: Exception) -> int | None:
    mark = getattr(exc, "problem_mark", None)
    return mark.line + 1 if mark is not None else None


def _print_text(result: engine.RunResult, out: TextIO) -> None:
    took = (result.finished_at - result.started_at) * 1000
    resumed = " (resumed)" if result.resumed else ""
    out.write(
        f"{result.phase}{resumed}: run {result.run_id} of {result.workflow} in {took:.0f} ms\n"
    )
    if result.error:
        out.write(f"error: {result.error}\n")
    if result.outputs:
        out.write("outputs:\n")
        text = yaml.safe_dump(result.outputs, sort_keys=False, allow_unicode=True, width=100)
        out.write("".join(f"  {line}\n" for line in text.splitlines()))


def main(args: argparse.Namespace) -> int:
    logs.configure(args.log_format)
    values, from_text = _inputs(args)
    show_progress = not args.quiet and (sys.stderr.isatty() or args.output == "text")
    observer = Progress(sys.stderr) if show_progress else None
    if show_progress:
        # Retries are on the progress lines already.
        logging.getLogger("autoflow.engine").setLevel(logging.WARNING)
    run = local.prepare(
        args.files,
        given_inputs=values,
        from_text=from_text,
        journal_dir=args.journal,
        store_url=args.store,
        workflow_name=args.workflow,
        secrets_file=args.secrets,
        observer=observer,
    )
    if show_progress:
        sys.stderr.write(f"▶ {run.plan.name} (run {run.run_id})\n")
    result = asyncio.run(_execute(run))
    if args.output == "json":
        json.dump(result.to_json(), sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        _print_text(result, sys.stdout)
    if result.phase == "Cancelled":
        return 130  # as a shell reports a command stopped by Ctrl-C
    return 0 if result.succeeded else 1


async def _execute(run: engine.Run) -> engine.RunResult:
    loop = asyncio.get_running_loop()
    interrupted = 0

    def on_signal() -> None:
        nonlocal interrupted
        interrupted += 1
        if interrupted > 1:
            raise SystemExit(130)
        sys.stderr.write("cancelling (Ctrl-C again to stop at once)\n")
        run.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        return await run.execute()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await run.limiter.aclose()  # made by prepare (limits.from_env), closed on its loop
        aclose = getattr(run.journal, "aclose", None)  # a store journal closes its store
        if aclose is not None:
            await aclose()
