"""The assistant's evaluation: how often its Workflows validate, first time and after repair.

    .venv/bin/python -P benchmarks/ai_eval/run.py [--provider openai|anthropic|all]
        [--model M] [--repairs 3] [--cases ID,...] [--verbose]

``cases.yaml`` holds realistic requests across the integration families (CRM, chat, e-mail,
files, databases, payments, marketing, project management), the Integrations that exist for
each, and what a correct Workflow must contain. For every case the assistant drafts a
Workflow (``webui.assistant.draft``) and this prints, per provider: how many first answers
validated (the baseline), how many validated after the repair rounds, the rounds used, how
many of the case's requirements the result meets, and the tokens spent.

Live mode: with OPENAI_API_KEY (and OPENAI_BASE_URL for a compatible server) or
ANTHROPIC_API_KEY in the environment, that provider's real model answers.
Scripted mode (no key): the local contract servers of the test suite answer, playing a model
that makes a typical mistake in three answers of four (a made-up action name, a cycle, an
unknown parameter) and answers the case's reference Workflow when told the problems. Its
figures measure the loop (grounding, validation, feedback, repair), not a model; the output
says which mode ran.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import dataclasses
import os
import re
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from autoflow.connectors.sdk import llm
from autoflow.crds import workflow
from autoflow.webui.assistant import draft, schema

HERE = Path(__file__).resolve().parent
CASES = HERE / "cases.yaml"
MISTAKES = ("none", "made-up action", "cycle", "unknown parameter")


@dataclasses.dataclass
class Result:
    case: str
    first_valid: bool
    valid: bool
    rounds: int
    met: int
    required: int
    tokens: int
    problems: list[str]


def load_cases(only: str | None = None) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = yaml.safe_load(CASES.read_text())
    if only:
        wanted = set(only.split(","))
        cases = [c for c in cases if c["id"] in wanted]
    return cases


# -- what a correct Workflow contains ---------------------------------------------------------


def requirements_met(case: dict[str, Any], manifest: dict[str, Any]) -> int:
    spec = manifest.get("spec") or {}
    uses = {s.get("uses") for s in spec.get("steps") or [] if isinstance(s, dict)}
    triggers = spec.get("triggers") or []
    met = 0
    for need in case["requires"]:
        if ("uses" in need and uses & set(need["uses"])) or (
            need.get("trigger") == "webhook"
            and any(isinstance(t, dict) and t.get("webhook") is not None for t in triggers)
        ):
            met += 1
    return met


# -- the scripted model -----------------------------------------------------------------------


def reference_manifest(case: dict[str, Any]) -> dict[str, Any]:
    ref = case["reference"]
    spec: dict[str, Any] = {"description": case["prompt"], "steps": ref["steps"]}
    if ref.get("inputs"):
        spec["inputs"] = {n: {"type": t} for n, t in ref["inputs"].items()}
    if ref.get("trigger"):
        spec["triggers"] = [{"webhook": webhook(ref["trigger"])}]
    return {"metadata": {"name": case["id"]}, "spec": spec}


def webhook(name: str) -> dict[str, Any]:
    """A webhook trigger as the installed Workflow model spells one: the gateway's (path,
    signature scheme, the Secret's name) when it is there, else the bare path."""
    if "auth" in workflow.WebhookTrigger.model_fields:
        preset = "stripe" if "stripe" in name else "github"
        auth = {"hmac": {"preset": preset}}
        return {"path": f"/{name}", "auth": auth, "secretRef": {"name": name}}
    return {"path": name}


def facing(manifest: dict[str, Any]) -> dict[str, Any]:
    return schema.to_answer(manifest)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def with_mistake(manifest: dict[str, Any], kind: str) -> dict[str, Any]:
    wrong = copy.deepcopy(manifest)
    steps = wrong["spec"]["steps"]
    first = steps[0]
    if kind == "made-up action":
        connector, _, action = first["uses"].partition(".")
        other = _camel(action) if "_" in action else _snake(action)
        first["uses"] = f"{connector}.{other if other != action else action + 'Now'}"
    elif kind == "cycle":
        if len(steps) == 1:
            steps.append({"id": "after", "uses": "core.log", "with": {"message": "done"}})
        first["needs"] = [steps[-1]["id"]]
        steps[-1]["needs"] = [first["id"]]
    elif kind == "unknown parameter":
        first.setdefault("with", {})["recipient"] = "someone"
    return wrong


def scripted_answer(cases: list[dict[str, Any]]) -> Any:
    by_prompt = {c["prompt"]: (i, c) for i, c in enumerate(cases)}

    def answer(body: dict[str, Any]) -> dict[str, Any]:
        user = [m["content"] for m in body["messages"] if m["role"] == "user"]
        request = user[0].split("\n", 1)[0].removeprefix("Request: ")
        index, case = by_prompt[request]
        reference = reference_manifest(case)
        if len(user) == 1:
            return facing(with_mistake(reference, MISTAKES[index % len(MISTAKES)]))
        return facing(reference)

    return answer


def scripted_clients(cases: list[dict[str, Any]], repairs: int) -> Iterator[tuple[str, llm.Client]]:
    sys.path.insert(0, str(HERE.parent.parent / "tests"))
    import httpserver
    from saas import anthropic_api, openai_api

    with httpserver.serve() as server:
        openai_fake = openai_api.OpenAI(server)
        anthropic_fake = anthropic_api.Anthropic(server)
        script = scripted_answer(cases)
        for fake in (openai_fake, anthropic_fake):
            fake.answer(*[script] * (len(cases) * (repairs + 1)))
        yield (
            "openai",
            llm.client(llm.Config("openai", "scripted", openai_api.API_KEY, openai_fake.base_url)),
        )
        yield (
            "anthropic",
            llm.client(
                llm.Config("anthropic", "scripted", anthropic_api.API_KEY, anthropic_fake.base_url)
            ),
        )
        violations = openai_fake.violations + anthropic_fake.violations
        if violations:
            print(f"contract violations: {violations}", file=sys.stderr)


# -- running ----------------------------------------------------------------------------------


async def evaluate(client: llm.Client, case: dict[str, Any], repairs: int) -> Result:
    try:
        made = await draft.draft(
            client, case["prompt"], integrations=case.get("integrations") or {}, repairs=repairs
        )
    except Exception as exc:  # a provider error is a failed case, not a failed benchmark
        return Result(case["id"], False, False, 0, 0, len(case["requires"]), 0, [str(exc)])
    manifest = yaml.safe_load(made.yaml)
    return Result(
        case=case["id"],
        first_valid=made.valid and made.rounds == 0,
        valid=made.valid,
        rounds=made.rounds,
        met=requirements_met(case, manifest) if made.valid else 0,
        required=len(case["requires"]),
        tokens=made.usage.total_tokens,
        problems=[str(p) for p in made.problems],
    )


def report(provider: str, mode: str, results: list[Result], verbose: bool) -> None:
    n = len(results)
    first = sum(r.first_valid for r in results)
    after = sum(r.valid for r in results)
    met = sum(r.met for r in results)
    required = sum(r.required for r in results)
    rounds = statistics.mean(r.rounds for r in results) if results else 0.0
    ratio = f"{after / first:.2f}x" if first else "n/a"
    print(f"\n{provider} ({mode}): {n} cases")
    print(f"  valid first answer   {first:3d}/{n}  {first / n:6.1%}   (baseline)")
    print(f"  valid after repair   {after:3d}/{n}  {after / n:6.1%}   ({ratio} the baseline)")
    print(f"  repair rounds used   mean {rounds:.2f}, max {max(r.rounds for r in results)}")
    print(f"  requirements met     {met:3d}/{required}  {met / required:6.1%}")
    print(f"  tokens               {sum(r.tokens for r in results)}")
    if verbose:
        for r in results:
            mark = "ok " if r.valid else "BAD"
            print(
                f"  {mark} {r.case:24s} first={r.first_valid!s:5s} rounds={r.rounds} "
                f"met={r.met}/{r.required} tokens={r.tokens}"
            )
            for p in r.problems[:3]:
                print(f"        {p}")


async def run(args: argparse.Namespace) -> int:
    cases = load_cases(args.cases)
    live = {
        p: llm.config_from_env(p, model=args.model)
        for p in llm.PROVIDERS
        if os.environ.get(llm.ENV_KEYS[p]) and args.provider in (p, "all")
    }
    if live:
        for provider, config in live.items():
            client = llm.client(config)
            results = [await evaluate(client, c, args.repairs) for c in cases]
            report(provider, f"live, model {config.model}", results, args.verbose)
        return 0
    print(
        "No OPENAI_API_KEY or ANTHROPIC_API_KEY in the environment: scripted mode, against "
        "the local contract servers (a scripted model, not a real one; the figures measure "
        "the repair loop)."
    )
    for name, scripted in scripted_clients(cases, args.repairs):
        if args.provider not in (name, "all"):
            continue
        results = [await evaluate(scripted, c, args.repairs) for c in cases]
        report(name, "scripted", results, args.verbose)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", choices=["openai", "anthropic", "all"], default="all")
    parser.add_argument("--model")
    parser.add_argument("--repairs", type=int, default=draft.DEFAULT_REPAIRS)
    parser.add_argument("--cases", help="comma-separated case ids")
    parser.add_argument("--verbose", "-v", action="store_true")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
