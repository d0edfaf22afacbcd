"""``autoflow ai``: the assistant on the command line (``autoflow.webui.assistant``).

    autoflow ai draft "when a Stripe payment fails, e-mail the customer and post to #billing"
        [--from FILE] [--integrations FILE ...] [--provider openai|anthropic] [--model M]
        [--base-url URL] [--repairs N] [--write FILE]
    autoflow ai explain FILE

``draft`` prints the proposed Workflow (and with ``--from``, a unified diff against that
file's Workflow); it writes nothing unless ``--write FILE`` is given, and then only a Workflow
that validates. Integrations come from the files given (``--from`` and ``--integrations``),
names and types only. Exit code 1 when no valid Workflow came out of the repair rounds, with
every remaining problem on stderr. The key is read from OPENAI_API_KEY or ANTHROPIC_API_KEY
(and a base URL from OPENAI_BASE_URL / ANTHROPIC_BASE_URL or ``--base-url``).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from autoflow.cli import args as args_mod

if TYPE_CHECKING:
    from autoflow.cli.args import Subcommands
    from autoflow.connectors.sdk import llm


def register(sub: Subcommands) -> None:
    p = args_mod.command(sub, "ai", "draft and explain Workflows with a language model")
    inner = p.add_subparsers(dest="ai_command", metavar="COMMAND", required=True)
    d = args_mod.command(inner, "draft", "propose a Workflow for a request (writes nothing)")
    d.add_argument("prompt", help="what the workflow should do, in words")
    d.add_argument("--from", dest="source", metavar="FILE", help="the Workflow to change")
    d.add_argument(
        "--integrations",
        nargs="*",
        default=[],
        metavar="FILE",
        help="files with the Integrations that exist (names and types are sent)",
    )
    _provider_options(d)
    d.add_argument(
        "--repairs", type=int, default=3, metavar="N", help="repair rounds at most (default 3)"
    )
    d.add_argument("--write", metavar="FILE", help="write the Workflow there when it is valid")
    args_mod.output(d, "text", "json")
    d.set_defaults(handler=main)
    e = args_mod.command(inner, "explain", "describe a Workflow in plain words")
    e.add_argument("file", metavar="FILE", help="a Workflow manifest")
    _provider_options(e)
    e.set_defaults(handler=main)


def _provider_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--provider",
        choices=["openai", "anthropic"],
        default=os.environ.get("AUTOFLOW_AI_PROVIDER", "openai"),
        help="the model provider (default openai, or AUTOFLOW_AI_PROVIDER)",
    )
    p.add_argument("--model", help="the model (default: AUTOFLOW_AI_MODEL or the provider's)")
    p.add_argument("--base-url", help="an OpenAI-compatible server (vLLM, Ollama, LiteLLM)")


def main(args: argparse.Namespace) -> int:
    import asyncio

    from autoflow.connectors.sdk import llm
    from autoflow.crds import errors

    try:
        config = llm.config_from_env(args.provider, model=args.model, base_url=args.base_url)
        client = llm.client(config)
        if args.ai_command == "explain":
            return asyncio.run(_explain(client, args.file))
        return asyncio.run(_draft(client, args))
    except errors.AutoflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


async def _explain(client: llm.Client, path: str) -> int:
    from autoflow.webui.assistant import draft

    with open(path, encoding="utf-8") as f:
        text, usage = await draft.explain(client, f.read())
    print(text)
    print(f"({usage.total_tokens} tokens)", file=sys.stderr)
    return 0


def _current(path: str) -> str:
    """The Workflow of the file: its text as is when it is the only document."""
    import yaml

    from autoflow.crds import errors
    from autoflow.runners.definitions import loader

    docs = loader.read_manifests(path)
    flows = [d for d in docs if d.data.get("kind") == "Workflow"]
    if not flows:
        raise errors.ManifestError(f"{path} has no Workflow to change")
    if len(docs) == 1:
        with open(path, encoding="utf-8") as f:
            return f.read()
    return yaml.safe_dump(flows[0].data, sort_keys=False, allow_unicode=True)


async def _draft(client: llm.Client, args: argparse.Namespace) -> int:
    from autoflow.cli import validate
    from autoflow.webui.assistant import draft

    files = [*([args.source] if args.source else []), *args.integrations]
    known = {n: t for n, t in validate.integration_types(files).items() if t is not None}
    current = _current(args.source) if args.source else None
    name = os.path.basename(args.source) if args.source else "workflow.yaml"
    made = await draft.draft(
        client,
        args.prompt,
        current=current,
        integrations=known,
        repairs=args.repairs,
        name=name,
    )
    if args.output == "json":
        import json

        print(json.dumps(made.as_json(), indent=2))
    else:
        print(made.yaml, end="")
        if current is not None:
            print(made.diff or "# no change", end="" if made.diff else "\n")
    for missing in made.missing_integrations:
        print(
            f"note: Integration {missing.name!r} (type {missing.type}) does not exist; "
            f"steps {', '.join(missing.steps)} need it",
            file=sys.stderr,
        )
    tokens = f"{made.usage.total_tokens} tokens in {made.usage.calls} calls"
    if not made.valid:
        print(f"error: {draft.AssistantFailed(made)}", file=sys.stderr)
        print(f"({tokens})", file=sys.stderr)
        return 1
    rounds = f"after {made.rounds} repair round{'s' if made.rounds != 1 else ''}"
    print(f"valid {rounds} ({tokens}); nothing was applied", file=sys.stderr)
    if args.write:
        with open(args.write, "w", encoding="utf-8") as f:
            f.write(made.yaml)
        print(f"wrote {args.write}", file=sys.stderr)
    return 0
