"""``autoflow integrations test FILE...``: is each Integration usable from here, right now?

The files are read as ``autoflow run`` reads them (any other resources in them are passed
over), and credentials come from where ``autoflow run`` takes them: environment variables
``AUTOFLOW_SECRET_<INTEGRATION>_<KEY>`` or a ``--secrets`` file. Each Integration's connector
probe runs at once, concurrently, with what the operator would write into its ``Ready``
condition printed per Integration::

    files ─ loader ─► Integrations ─ LocalIntegrations.get ─► IntegrationInfo (+ Redactor)
    ─ runners.access.probe.check, all at once ─► one line (or JSON object) each; exit 1 if any is
      not ready

Nothing a probe prints has a secret in it: every value read was registered with the
Integration's Redactor, which the message passes through.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from autoflow.crds import errors, integration
from autoflow.runners.access import probe, redact
from autoflow.runners.definitions import loader
from autoflow.runners.local import run as local


@dataclasses.dataclass(frozen=True)
class Result:
    """One Integration's verdict and how long it took."""

    name: str
    type: str
    health: probe.Health
    elapsed_ms: float

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "ready": self.health.ready,
            "reason": self.health.reason,
            "message": self.health.message,
            "elapsedMs": round(self.elapsed_ms, 1),
        }


def load(paths: Sequence[str], names: Sequence[str] = ()) -> list[integration.Integration]:
    """Every Integration in the files (or those named), in file order; errors name the file."""
    found: list[integration.Integration] = []
    where: dict[str, str] = {}
    for path in paths:
        for res in loader.load_file(path):
            if not isinstance(res, integration.Integration):
                continue
            name = res.metadata.name or ""
            if name in where:
                raise errors.ManifestError(
                    f"Integration {name!r} is defined twice (first in {where[name]})",
                    errors.Where(file=path, resource=res.ref),
                )
            where[name] = path
            found.append(res)
    if not found:
        raise errors.ManifestError(f"no Integration in {', '.join(paths)}")
    if names:
        unknown = [n for n in names if n not in where]
        if unknown:
            raise errors.ManifestError(
                f"no Integration named {unknown[0]!r} in the files (there: "
                f"{', '.join(sorted(where))})"
            )
        found = [i for i in found if i.metadata.name in names]
    return found


async def check_all(
    integrations: Sequence[integration.Integration],
    provider: local.LocalIntegrations,
    timeout: float,
) -> list[Result]:
    """Every Integration probed at once; results in the order given."""
    return list(await asyncio.gather(*(_test(i, provider, timeout) for i in integrations)))


async def _test(
    intg: integration.Integration, provider: local.LocalIntegrations, timeout: float
) -> Result:
    name = intg.metadata.name or ""
    redactor = redact.Redactor()
    started = time.perf_counter()
    try:
        # Reading the credentials may fetch an OAuth2 token: bounded by the timeout too.
        async with asyncio.timeout(timeout):
            info = await provider.get(name, redactor)
    except TimeoutError:
        text = f"integration {name!r}: no OAuth2 token within {timeout:g}s"
        health = probe.Health(False, probe.TIMEOUT, text)
    except Exception as exc:
        health = probe.failed(name, exc, redactor)
    else:
        health = await probe.check(info, redactor, timeout=timeout)
    return Result(name, intg.spec.type, health, (time.perf_counter() - started) * 1000)


def _print_text(results: Sequence[Result]) -> None:
    width = {
        "name": max(len(r.name) for r in results),
        "type": max(len(r.type) for r in results),
        "reason": max(len(r.health.reason) for r in results),
    }
    for r in results:
        state = "READY" if r.health.ready else "NOT READY"
        print(
            f"{r.name:<{width['name']}}  {r.type:<{width['type']}}  {state:<9}  "
            f"{r.health.reason:<{width['reason']}}  {r.health.message}  ({r.elapsed_ms:.0f} ms)"
        )


def main(args: argparse.Namespace) -> int:
    if args.timeout <= 0:
        raise errors.InputError(f"--timeout must be more than 0 seconds, not {args.timeout:g}")
    integrations = load(args.files, args.name or ())
    secrets = local.read_secrets_file(args.secrets) if args.secrets else None
    provider = local.LocalIntegrations(integrations, secrets)
    results = asyncio.run(check_all(integrations, provider, args.timeout))
    if args.output == "json":
        json.dump([r.to_json() for r in results], sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_text(results)
    return 0 if all(r.health.ready for r in results) else 1
