"""The ``autoflow`` command: validate, run, inspect workflows, test Integrations; entry points.

Each subcommand imports what it needs when it runs, so ``autoflow run`` does not pay for the
CRD generator and ``autoflow validate`` does not pay for httpx. Every error a user can cause
is printed as one readable line per problem (file, resource, step, field) with exit code 1;
a traceback means a bug in Autoflow.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autoflow", description="Kubernetes-native, no-code business-process automation."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("validate", help="check workflow manifests without running them")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--output", "-o", choices=["text", "json"], default="text")

    p = sub.add_parser("run", help="run a workflow here, in this process (no cluster needed)")
    p.add_argument(
        "files", nargs="+", metavar="FILE", help="the Workflow, and Integrations it uses"
    )
    p.add_argument("--workflow", help="which Workflow, when the files hold several")
    p.add_argument("--input", "-i", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("--inputs-file", metavar="FILE", help="YAML or JSON mapping of inputs")
    p.add_argument("--journal", metavar="DIR", help="journal here; a killed run resumes from it")
    p.add_argument(
        "--restart",
        action="store_true",
        help="with --journal: start a new run even if the journal holds an unfinished one "
        "(that journal is kept as DIR/<run id>.jsonl)",
    )
    p.add_argument("--secrets", metavar="FILE", help="YAML: integration name → key → value")
    p.add_argument("--output", "-o", choices=["text", "json"], default="text")
    p.add_argument("--log-format", choices=["human", "json"], default="human")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines")

    sub.add_parser("crds", help="print the CustomResourceDefinitions")

    p = sub.add_parser("operator", help="run the Kubernetes operator (kopf)")
    p.add_argument("--namespace", "-n", action="append", default=[], help="watch only these")

    p = sub.add_parser("runner", help="run one WorkflowRun in this pod (Job mode)")
    p.add_argument("--run", required=True, metavar="NAMESPACE/NAME")
    p.add_argument("--kubeconfig", help="default: in-cluster, else $KUBECONFIG")

    p = sub.add_parser("schema", help="print JSON Schemas of the kinds and connector actions")
    p.add_argument("name", nargs="?", help="a kind (Workflow) or an action (http.request)")

    p = sub.add_parser("connectors", help="list connectors or show one's actions")
    csub = p.add_subparsers(dest="connectors_command", metavar="list|show")
    csub.add_parser("list", help="every connector and its actions")
    show = csub.add_parser("show", help="the actions of one connector with their schemas")
    show.add_argument("name")

    p = sub.add_parser(
        "integrations", help="check Integrations, or authorize an OAuth2 one, from manifest files"
    )
    isub = p.add_subparsers(dest="integrations_command", metavar="SUBCOMMAND")
    test = isub.add_parser(
        "test", help="probe each Integration now, with credentials from here, as the operator does"
    )
    test.add_argument("files", nargs="+", metavar="FILE", help="files holding Integrations")
    test.add_argument(
        "--name", action="append", default=[], help="only this Integration (may be repeated)"
    )
    test.add_argument("--secrets", metavar="FILE", help="YAML: integration name → key → value")
    test.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS", help="per probe")
    test.add_argument("--output", "-o", choices=["text", "json"], default="text")
    from autoflow.cli import authorize

    authorize.register(isub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return EXIT_USAGE
    from autoflow.crds import errors

    try:
        if args.command == "validate":
            from autoflow.cli import validate

            return validate.main(args.files, args.output)
        if args.command == "run":
            from autoflow.cli import run

            return run.main(args)
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

            sys.stdout.write("".join(generate.crd_files().values()))
            return EXIT_OK
        if args.command == "schema":
            from autoflow.cli import inspect

            return inspect.schema(args.name)
        if args.command == "connectors":
            from autoflow.cli import inspect

            if args.connectors_command == "show":
                return inspect.show_connector(args.name)
            return inspect.list_connectors()
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
        _report(exc, getattr(args, "output", "text"))
        return EXIT_FAILED
    except BrokenPipeError:
        # The reader went away (autoflow run ... | head); nothing more to say.
        sys.stderr.close()
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return EXIT_USAGE


def _report(exc: Any, output: str) -> None:
    """An error as one line per problem on stderr, or with ``--output json`` as one JSON
    document on stdout (what a script reading the output parses)."""
    from autoflow.crds import errors
    from autoflow.runners import loader

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


def run_module() -> Any:
    sys.exit(main())


if __name__ == "__main__":
    run_module()
