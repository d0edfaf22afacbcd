"""``autoflow import n8n FILE... [--to DIR] [-o text|json]``: n8n exports → Autoflow manifests.

Each file is an n8n workflow export (one workflow, or a list from ``n8n export:workflow
--all``). Every workflow becomes one YAML stream (the Workflow, its Schedules and Integration
stubs without secret values): printed to stdout, or with ``--to DIR`` written to
``DIR/<workflow>.yaml``. The report (converted / approximated / not converted, node by node)
goes to stderr as text, or with ``-o json`` to stdout as one JSON document (which then also
holds the YAML when no ``--to`` is given).

Exit code 1 only when a file cannot be read or is not an n8n export; a partial conversion
exits 0 with its report.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from autoflow.cli import args as args_mod

if TYPE_CHECKING:
    from autoflow.cli.args import Subcommands


def register(sub: Subcommands) -> None:
    """Adds ``import n8n`` to the ``autoflow`` subcommands."""
    p = args_mod.command(sub, "import", "convert workflows from other tools (n8n) into manifests")
    isub = p.add_subparsers(dest="import_from", metavar="n8n")
    n8n = args_mod.command(
        isub, "n8n", "convert n8n workflow exports (JSON) into Workflows, Schedules, Integrations"
    )
    n8n.add_argument("files", nargs="+", metavar="FILE", help="n8n export files (.json)")
    n8n.add_argument("--to", metavar="DIR", help="write DIR/<workflow>.yaml instead of stdout")
    args_mod.output(n8n, "text", "json")
    n8n.set_defaults(handler=main)
    p.set_defaults(handler=_no_source)


def _no_source(args: argparse.Namespace) -> int:
    args.parser_.print_help(sys.stderr)
    return 2


def main(args: argparse.Namespace) -> int:
    from autoflow.webui.importers import n8n

    failed = False
    results: list[dict[str, Any]] = []
    streams: list[str] = []
    written: set[str] = set()
    if args.to:
        os.makedirs(args.to, exist_ok=True)
    for path in args.files:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
            converted = n8n.convert_all(text, source=path)
        except (OSError, UnicodeDecodeError) as exc:
            failed = True
            print(f"error: {path}: cannot read it ({exc})", file=sys.stderr)
            results.append({"file": path, "error": f"cannot read it ({exc})"})
            continue
        except n8n.NotAnExport as exc:
            failed = True
            print(f"error: {exc}", file=sys.stderr)
            results.append({"file": path, "error": str(exc)})
            continue
        for result in converted:
            entry: dict[str, Any] = {"file": path, "workflow": result.name}
            if args.to:
                target = os.path.join(args.to, f"{result.name}.yaml")
                n = 2
                while target in written:  # two exports with one name: keep both
                    target = os.path.join(args.to, f"{result.name}-{n}.yaml")
                    n += 1
                written.add(target)
                with open(target, "w", encoding="utf-8") as f:
                    f.write(result.yaml)
                entry["written"] = target
            else:
                streams.append(result.yaml)
                entry["yaml"] = result.yaml
            entry["report"] = result.report.as_json()
            results.append(entry)
            if args.output == "text":
                print(result.report.text(), file=sys.stderr if not args.to else sys.stdout)
                if args.to:
                    print(f"  written to {entry['written']}")
    if args.output == "json":
        print(json.dumps({"files": results}, indent=2, ensure_ascii=False))
    elif streams:
        print("---\n".join(streams), end="")
    return 1 if failed else 0
