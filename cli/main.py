"""The ``autoflow`` command: validate, run, inspect workflows, test Integrations; entry points.

Each subcommand imports what it needs when it runs, so ``autoflow run`` does not pay for the
CRD generator and ``autoflow validate`` does not pay for httpx. Every error a user can cause
is printed as one readable line per problem (file, resource, step, field) with exit code 1;
a traceback means a bug in Autoflow.

Each subcommand is registered by one ``_add_<command>`` function; ``_command`` makes a
subcommand whose usage errors (an unknown option too) show that subcommand's usage, and
``_output`` gives every command that prints data its ``-o/--output`` choice.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from autoflow.cli import args as args_mod

if TYPE_CHECKING:
    from autoflow.cli.args import Subcommands

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# Modules of ``autoflow.cli`` that register their own subcommands (see ``_parser``).
PLUGGED: tuple[str, ...] = ("worker", "serve", "webui")


def _parser() -> argparse.ArgumentParser:
    from autoflow import __version__

    parser = argparse.ArgumentParser(
        prog="autoflow", description="Kubernetes-native, no-code business-process automation."
    )
    parser.add_argument(
        "--version", action="version", version=f"autoflow {__version__}", help="print the version"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_validate(sub)
    _add_run(sub)
    _add_crds(sub)
    _add_operator(sub)
    _add_runner(sub)
    _add_schema(sub)
    _add_connectors(sub)
    _add_integrations(sub)
    from autoflow.cli import runs

    runs.register(sub)
    # Commands of the faces added later (gateway, worker, serve, webui, ai, import): each module
    # has ``register(sub)``, which sets ``handler`` (``args -> exit code``) on its parsers.
    import importlib

    for name in PLUGGED:
        importlib.import_module(f"autoflow.cli.{name}").register(sub)
    return parser


def _add_validate(sub: Subcommands) -> None:
    p = args_mod.command(sub, "validate", "check workflow manifests without running them")
    p.add_argument(
        "files", nargs="+", metavar="FILE", help="manifest files (Workflows, Integrations, ...)"
    )
    args_mod.output(p, "text", "json")


def _add_run(sub: Subcommands) -> None:
    p = args_mod.command(sub, "run", "run a workflow here, in this process (no cluster needed)")
    p.add_argument(
        "files", nargs="+", metavar="FILE", help="the Workflow, and Integrations it uses"
    )
    p.add_argument("--workflow", help="which Workflow, when the files hold several")
    p.add_argument(
        "--input",
        "-i",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an input, converted to its declared type (may be repeated)",
    )
    p.add_argument("--inputs-file", metavar="FILE", help="YAML or JSON mapping of inputs")
    p.add_argument("--journal", metavar="DIR", help="journal here; a killed run resumes from it")
    p.add_argument(
        "--restart",
        action="store_true",
        help="with --journal: start a new run even if the journal holds an unfinished one "
        "(that journal is kept as DIR/<run id>.jsonl)",
    )
    p.add_argument(
        "--store",
        metavar="URL",
        help="journal into this run store (sqlite:///PATH, postgresql://...), not --journal",
    )
    p.add_argument("--secrets", metavar="FILE", help="YAML: integration name → key → value")
    args_mod.output(p, "text", "json")
    p.add_argument(
        "--log-format",
        choices=["human", "json"],
        default="human",
        help="how log lines (stderr) are written (default human)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines")


def _add_crds(sub: Subcommands) -> None:
    p = args_mod.command(sub, "crds", "print the CustomResourceDefinitions")
    args_mod.output(p, "yaml", "json")


def _add_operator(sub: Subcommands) -> None:
    p = args_mod.command(sub, "operator", "run the Kubernetes operator (kopf)")
    p.add_argument(
        "--namespace",
        "-n",
        action="append",
        default=[],
        help="watch only this namespace (may be repeated; default all)",
    )


def _add_runner(sub: Subcommands) -> None:
    p = args_mod.command(sub, "runner", "run one WorkflowRun in this pod (Job mode)")
    p.add_argument(
        "--run", required=True, metavar="NAMESPACE/NAME", help="the WorkflowRun to execute"
    )
    p.add_argument("--kubeconfig", help="default: in-cluster, else $KUBECONFIG")


def _add_schema(sub: Subcommands) -> None:
    p = args_mod.command(sub, "schema", "print JSON Schemas of the kinds and connector actions")
    p.add_argument(
        "name",
        nargs="?",
        help="a kind (Workflow) or an action (http.request); default: all of them",
    )
    args_mod.output(p, "json", "yaml")


def _add_connectors(sub: Subcommands) -> None:
    p = args_mod.command(sub, "connectors", "list connectors or show one's actions")
    csub = p.add_subparsers(dest="connectors_command", metavar="list|show")
    p = args_mod.command(csub, "list", "every connector and its actions")
    args_mod.output(p, "text", "json")
    p = args_mod.command(csub, "show", "the actions of one connector with their parameters")
    p.add_argument("name", help="a connector's name (autoflow connectors list names them)")
    args_mod.output(p, "text", "json")


def _add_integrations(sub: Subcommands) -> None:
    from autoflow.cli import authorize

    p = args_mod.command(
        sub,
        "integrations",
        "check Integrations, or authorize an OAuth2 one, from manifest files",
    )
    isub = p.add_subparsers(dest="integrations_command", metavar="SUBCOMMAND")
    test = args_mod.command(
        isub, "test", "probe each Integration now, with credentials from here, as the operator does"
    )
    test.add_argument("files", nargs="+", metavar="FILE", help="files holding Integrations")
    test.add_argument(
        "--name", action="append", default=[], help="only this Integration (may be repeated)"
    )
    test.add_argument("--secrets", metavar="FILE", help="YAML: integration name → key → value")
    test.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS", help="per probe")
    args_mod.output(test, "text", "json")
    authorize.register(isub)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # The reader went away (autoflow run ... | head): nothing more to say. stdout now
        # points at /dev/null so the interpreter's last flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        # argparse reports these from the top-level parser; say them with the usage of the
        # subcommand they were given to.
        getattr(args, "parser_", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        _parser().print_help()
        return EXIT_USAGE
    from autoflow.crds import errors

    try:
        handler = getattr(args, "handler", None)
        if handler is not None:
            code: int = handler(args)
            return code
        if args.command == "validate":
            from autoflow.cli import validate

            return validate.main(args.files, args.output)
        if args.command == "run":
            from autoflow.cli import run

            return run.main(args)
        if args.command in ("runs", "store"):
            from autoflow.cli import runs

            return runs.main(args)
        if args.command == "operator":
            from autoflow.operator import main as operator_main

            return operator_main.main(args.namespace)
        if args.command == "runner":
            import asyncio

            from autoflow.runners import logs
            from autoflow.runners.job import runner as job

            logs.configure("json")
            return asyncio.run(job.main(args.run, args.kubeconfig))
        if args.command == "crds":
            from autoflow.crds import generate

            if args.output == "json":
                import yaml

                crds = [yaml.safe_load(text) for text in generate.crd_files().values()]
                _print_json({"apiVersion": "v1", "kind": "List", "items": crds})
            else:
                sys.stdout.write("".join(generate.crd_files().values()))
            return EXIT_OK
        if args.command == "schema":
            from autoflow.cli import inspect

            return inspect.schema(args.name, args.output)
        if args.command == "connectors":
            from autoflow.cli import inspect

            if args.connectors_command == "show":
                return inspect.show_connector(args.name, args.output)
            return inspect.list_connectors(getattr(args, "output", "text"))
        if args.command == "integrations":
            if args.integrations_command == "test":
                from autoflow.cli import integrations

                return integrations.main(args)
            if args.integrations_command == "authorize":
                from autoflow.cli import authorize

                return authorize.run(args)
            print(
                "usage: autoflow integrations test|authorize FILE... (--help for more)",
                file=sys.stderr,
            )
            return EXIT_USAGE
    except errors.AutoflowError as exc:
        # With --output json a result's errors are a JSON document too; schema and crds print
        # documents, not results, so their errors stay lines on stderr.
        text_only = args.command in ("schema", "crds")
        _report(exc, "text" if text_only else getattr(args, "output", "text"))
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return EXIT_USAGE


def _report(exc: Any, output: str) -> None:
    """An error as one line per problem on stderr, or with ``--output json`` as one JSON
    document on stdout (what a script reading the output parses)."""
    from autoflow.crds import errors
    from autoflow.runners.definitions import loader

    problems = getattr(exc, "problems", None)
    if not isinstance(problems, list):
        problems = [errors.Problem(exc.message, exc.where)]
    if isinstance(exc, errors.ManifestError):
        # Found after loading (compiling the plan): point at the step's line in the file.
        problems = loader.with_lines(problems)
    if output == "json":
        import json

        from autoflow.cli import validate

        doc = {
            "error": problems[0].message,
            "problems": [validate.problem_json(p) for p in problems],
        }
        print(json.dumps(doc, indent=2))
        return
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)


def _print_json(doc: Any) -> None:
    import json

    print(json.dumps(doc, indent=2))


def run_module() -> Any:
    sys.exit(main())


if __name__ == "__main__":
    run_module()
