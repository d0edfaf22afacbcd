"""``autoflow run``: run a workflow in this process with live per-step progress.

Progress lines go to stderr on a terminal (or when asked); the result goes to stdout, as text
or, with ``--output json``, as one JSON document a script can read.

Ctrl-C or SIGTERM (a plain ``kill``) on a journaled run (``--journal``) is an interruption,
not a cancellation: no new step starts, the running steps finish and are journaled, no end is
recorded, and the command says how to resume (run the same command again) and exits 128 +
the signal's number. Without a journal there is nothing to resume, so the signal cancels the
run as ``Run.cancel`` does: onError and finally steps still run, the result is ``Cancelled``.
Either way a second signal stops at once (a journaled run stays resumable).
Integration limits are shared through Redis when ``AUTOFLOW_REDIS_URL`` is set
(``runners.access.limits``), else kept in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shlex
import signal
import sys
from typing import Any, TextIO

import yaml

from autoflow.crds import errors
from autoflow.runners import engine, expressions, logs
from autoflow.runners.definitions import documents
from autoflow.runners.local import run as local

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
        # The same reader and limits as manifests: size, aliases, nesting, duplicate keys.
        loaded = documents.read_one(args.inputs_file, "inputs file")
        if not isinstance(loaded.data, dict):
            raise errors.InputError(
                "an inputs file is a mapping of input names to values",
                errors.Where(file=args.inputs_file, line=loaded.line),
            )
        values.update(loaded.data)
    for item in args.input:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise errors.InputError(f"--input takes NAME=VALUE; got {item!r}")
        values[name] = value
    # Command-line values arrive as text and are converted to the declared types.
    return values, bool(args.input)


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
    if args.restart and not args.journal:
        raise errors.AutoflowError("--restart starts a new run over a journal: give --journal DIR")
    run = local.prepare(
        args.files,
        given_inputs=values,
        from_text=from_text,
        journal_dir=args.journal,
        store_url=args.store,
        workflow_name=args.workflow,
        secrets_file=args.secrets,
        observer=observer,
        restart=args.restart,
    )
    if show_progress:
        sys.stderr.write(f"▶ {run.plan.name} (run {run.run_id})\n")
    stop = _Stop(run, journaled=bool(args.journal))
    try:
        result = asyncio.run(_execute(run, stop))
    except engine.RunInterrupted as exc:
        _print_interrupted(exc, run, args.output)
        return 128 + stop.signum
    if args.output == "json":
        json.dump(result.to_json(), sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    else:
        _print_text(result, sys.stdout)
    if result.phase == "Cancelled":
        return 130  # as a shell reports a command stopped by Ctrl-C
    return 0 if result.succeeded else 1


def resume_command() -> str:
    """The command line that resumes this run: the same one."""
    return shlex.join(["autoflow", *sys.argv[1:]])


def _print_interrupted(exc: engine.RunInterrupted, run: engine.Run, output: str) -> None:
    where = getattr(run.journal, "path", "the journal")
    if output == "json":
        doc = {
            "runId": exc.run_id,
            "workflow": run.plan.name,
            "phase": "Interrupted",
            "finishedSteps": exc.finished,
            "journal": where,
            "resumeCommand": resume_command(),
        }
        json.dump(doc, sys.stdout, indent=2)
        sys.stdout.write("\n")
    sys.stderr.write(
        f"interrupted: run {exc.run_id} of {run.plan.name} stopped with "
        f"{len(exc.finished)} finished step(s) journaled in {where}\n"
        f"resume it by running the same command again: {resume_command()}\n"
    )


class _Stop:
    """What a signal does: interrupt a journaled run (it resumes), cancel one without a
    journal (nothing could resume it); the second signal stops at once."""

    def __init__(self, run: engine.Run, *, journaled: bool) -> None:
        self.run = run
        self.journaled = journaled
        self.signum = 0

    def __call__(self, signum: int) -> None:
        if self.signum:
            if self.journaled:
                sys.stderr.write(
                    f"stopped at once; resume by running the same command: {resume_command()}\n"
                )
            raise SystemExit(128 + signum)
        self.signum = signum
        if self.journaled:
            sys.stderr.write(
                "interrupted: letting the running steps finish; the run stays resumable "
                "(Ctrl-C again to stop at once)\n"
            )
            self.run.interrupt()
        else:
            sys.stderr.write("cancelling (Ctrl-C again to stop at once)\n")
            self.run.cancel()


async def _execute(run: engine.Run, stop: _Stop) -> engine.RunResult:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop, sig)
    expressions.stop_on(signal.SIGINT, signal.SIGTERM)  # also in the middle of an expression
    try:
        return await run.execute()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await run.limiter.aclose()  # made by prepare (limits.from_env), closed on its loop
        aclose = getattr(run.journal, "aclose", None)  # a store journal closes its store
        if aclose is not None:
            await aclose()
