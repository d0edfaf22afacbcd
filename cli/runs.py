"""``autoflow runs list|show|stats|export|purge|erase|audit|versions|spec`` and ``autoflow store
migrate``: run history.

Every command reads the store named by ``--store URL`` or ``AUTOFLOW_STORE_URL``
(``sqlite:///PATH`` or ``postgresql://...``). People get tables; ``-o json`` gives scripts
one JSON document; ``export`` writes CSV (runs, or stats per workflow and step) for
spreadsheets. Times are taken as ISO dates (``2026-01-31``, ``2026-01-31T12:00:00+01:00``,
UTC when no zone is given) or as a duration back from now (``24h``, ``7d``).

    args ─► RunFilter ─► open_store ─► list_runs / get_run / stats / purge ─► table | JSON | CSV

A purge without any filter is refused: deleting all history takes an explicit ``--before``.
``purge --expired`` applies retention (each workflow's ``spec.retention``, else the default
from ``--days``/``--max-runs`` or ``AUTOFLOW_STORE_RETENTION_DAYS``/``_MAX_RUNS``);
``erase --subject VALUE`` removes every run of a data subject (the store hashes the value
with ``AUTOFLOW_STORE_SUBJECT_KEY``). Both leave audit records (``runs audit``), naming the
account that ran the command. ``runs spec RUN`` prints the Workflow a run ran, ready to
``kubectl apply`` (restore); ``runs versions WORKFLOW`` lists the versions runs ran.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from autoflow.cli import args as args_mod

if TYPE_CHECKING:
    from autoflow.cli.args import Subcommands

ENV_URL = "AUTOFLOW_STORE_URL"
ENV_DAYS = "AUTOFLOW_STORE_RETENTION_DAYS"
ENV_MAX_RUNS = "AUTOFLOW_STORE_RETENTION_MAX_RUNS"
COMMANDS = "list|show|stats|export|purge|erase|audit|versions|spec|start"


def register(sub: Subcommands) -> None:
    """Adds ``runs`` and ``store`` to the ``autoflow`` subcommands."""
    p = args_mod.command(sub, "runs", "run history in the run store: list, show, stats, purge")
    # Also before the subcommand (autoflow runs --store URL list); a dest of its own, as a
    # subcommand's default would overwrite it.
    p.add_argument(
        "--store", dest="runs_store", metavar="URL", help=f"the run store (default: ${ENV_URL})"
    )
    rsub = p.add_subparsers(dest="runs_command", metavar=COMMANDS)

    ls = args_mod.command(rsub, "list", "runs, newest first, a page at a time")
    _store_arg(ls)
    _filters(ls)
    ls.add_argument("--limit", type=int, default=50, help="runs per page (default 50)")
    ls.add_argument("--cursor", help="the next page: the cursor the previous page printed")
    args_mod.output(ls, "table", "json")

    show = args_mod.command(rsub, "show", "one run with its steps and attempts")
    _store_arg(show)
    show.add_argument("run_id", metavar="RUN", help="the run's id")
    args_mod.output(show, "table", "json")

    stats = args_mod.command(rsub, "stats", "count, success ratio, p50/p95 per workflow and step")
    _store_arg(stats)
    _window(stats)
    args_mod.output(stats, "table", "json", "csv")

    export = args_mod.command(rsub, "export", "runs (or stats) as CSV or JSON lines")
    _store_arg(export)
    export.add_argument(
        "what", nargs="?", choices=["runs", "stats"], default="runs", help="what to export"
    )
    _filters(export)
    export.add_argument("--bucket", default="1h", help="stats: width of a time bucket")
    args_mod.output(export, "csv", "json")

    purge = args_mod.command(rsub, "purge", "delete finished runs matching a filter")
    _store_arg(purge)
    purge.add_argument("--workflow", help="runs of this workflow")
    purge.add_argument("--namespace", help="runs in this namespace")
    purge.add_argument("--phase", help="runs that ended so: Succeeded, Failed, Cancelled")
    purge.add_argument("--trigger", help="runs started so: manual, cli, schedule, webhook, ...")
    purge.add_argument("--before", metavar="WHEN", help="runs started before (date or 30d)")
    purge.add_argument("--run", dest="run_id", metavar="RUN", help="this run, even unfinished")
    purge.add_argument(
        "--expired",
        action="store_true",
        help="apply retention: each workflow's spec.retention, else --days/--max-runs",
    )
    purge.add_argument(
        "--days", type=float, help=f"--expired: default days to keep (default: ${ENV_DAYS})"
    )
    purge.add_argument(
        "--max-runs",
        type=int,
        help=f"--expired: default runs kept per workflow (default: ${ENV_MAX_RUNS})",
    )
    args_mod.output(purge, "table", "json")

    erase = args_mod.command(rsub, "erase", "delete every run about one data subject")
    _store_arg(erase)
    erase.add_argument(
        "--subject", required=True, metavar="VALUE", help="the value, e.g. the e-mail address"
    )
    args_mod.output(erase, "table", "json")

    audit = args_mod.command(rsub, "audit", "purges and erasures: who, what, when, how many")
    _store_arg(audit)
    audit.add_argument("--limit", type=int, default=100, help="records (default 100)")
    args_mod.output(audit, "table", "json")

    versions = args_mod.command(rsub, "versions", "the Workflow specs a workflow's runs ran")
    _store_arg(versions)
    versions.add_argument("workflow", metavar="WORKFLOW", help="the workflow's name")
    versions.add_argument("--namespace", default="", help="runs in this namespace")
    args_mod.output(versions, "table", "json")

    spec = args_mod.command(rsub, "spec", "the Workflow a run ran, as YAML to re-apply")
    _store_arg(spec)
    spec.add_argument("ref", metavar="RUN|HASH", help="a run's id or a spec hash")
    args_mod.output(spec, "yaml", "json")

    start = args_mod.command(
        rsub, "start", "start a pool run of a workflow (queued for workers, or autoflow serve)"
    )
    _store_arg(start)
    start.add_argument("target", metavar="NAMESPACE/WORKFLOW", help="the Workflow to run")
    start.add_argument(
        "--input",
        "-i",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an input, converted to its declared type (may be repeated)",
    )
    start.add_argument(
        "--file",
        "-f",
        metavar="FILE",
        help="read the Workflow from this manifest (default: from Kubernetes)",
    )
    start.add_argument("--kubeconfig", help="read the Workflow with this kubeconfig")
    start.add_argument(
        "--nats",
        metavar="URL",
        help="queue the run on this NATS JetStream for autoflow worker (default: "
        "$AUTOFLOW_NATS_URL; unset: only recorded, for autoflow serve to pick up)",
    )
    start.add_argument(
        "--wait", metavar="DURATION", help="wait up to this long for the run's end (30s, 5m)"
    )
    args_mod.output(start, "table", "json")

    p = args_mod.command(sub, "store", "the run store's schema: migrate")
    ssub = p.add_subparsers(dest="store_command", metavar="migrate|version")
    mig = args_mod.command(ssub, "migrate", "bring the store's schema to this Autoflow's version")
    _store_arg(mig)
    ver = args_mod.command(ssub, "version", "the store's schema version")
    _store_arg(ver)


def _store_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", metavar="URL", help=f"the run store (default: ${ENV_URL})")


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workflow", help="runs of this workflow")
    p.add_argument("--namespace", help="runs in this namespace")
    p.add_argument("--phase", help="Running, Succeeded, Failed, Cancelled")
    p.add_argument("--trigger", help="manual, cli, schedule, webhook, ...")
    p.add_argument("--since", metavar="WHEN", help="started at or after (date or 24h)")
    p.add_argument("--until", metavar="WHEN", help="started before (date or 1h)")
    p.add_argument("--error", metavar="TEXT", help="text within the run's error")


def _window(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workflow", help="only this workflow")
    p.add_argument("--namespace", help="only this namespace's workflows")
    p.add_argument("--since", metavar="WHEN", default="24h", help="default: 24h ago")
    p.add_argument("--until", metavar="WHEN", help="default: now")
    p.add_argument("--bucket", default="1h", help="width of a runs-per-time bucket (1h, 1d)")


def main(args: argparse.Namespace) -> int:
    from autoflow.crds import errors

    if args.command == "store" and args.store_command not in ("migrate", "version"):
        print("usage: autoflow store migrate|version --store URL", file=sys.stderr)
        return 2
    command = {
        "list": _list,
        "show": _show,
        "stats": _stats,
        "export": _export,
        "purge": _purge,
        "erase": _erase,
        "audit": _audit,
        "versions": _versions,
        "spec": _spec,
        "start": _start,
    }.get(getattr(args, "runs_command", None) or "")
    if args.command == "runs" and command is None:
        usage = f"usage: autoflow runs {COMMANDS} (--help for more)"
        print(usage, file=sys.stderr)
        return 2
    url = args.store or getattr(args, "runs_store", None) or os.environ.get(ENV_URL)
    if not url:
        raise errors.AutoflowError(f"no run store: pass --store URL or set {ENV_URL}")
    if command is None:
        migrate = args.store_command == "migrate"
        return _run(url, _store_command(args.store_command), migrate=migrate)
    return _run(url, lambda st: command(st, args, sys.stdout))


def _run(url: str, body: Callable[[Any], Awaitable[int]], *, migrate: bool = False) -> int:
    from autoflow.runners import store

    async def go() -> int:
        st = await store.open_store(url, migrate=migrate)
        try:
            return await body(st)
        finally:
            await st.aclose()

    return asyncio.run(go())


def _store_command(name: str) -> Callable[[Any], Awaitable[int]]:
    async def run(st: Any) -> int:
        from autoflow.runners.store import migrations

        version = await st.schema_version()
        verb = "migrated to" if name == "migrate" else "at"
        latest = migrations.LATEST
        print(f"run store {st.display_url} {verb} schema version {version} (latest {latest})")
        return 0

    return run


# -- times ------------------------------------------------------------------------------------


def when(text: str | None, now: float | None = None) -> float | None:
    """Epoch seconds from an ISO date/time or a duration back from now (``24h``)."""
    if text is None or text == "":
        return None
    from autoflow.crds import errors, meta

    now = time.time() if now is None else now
    try:
        return now - meta.parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise errors.InputError(
            f"{text!r} is not a time: give a date (2026-01-31), a date and time "
            "(2026-01-31T12:00:00Z) or how long ago (24h, 7d)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def iso(ts: float | None) -> str:
    if ts is None:
        return ""
    moment = datetime.datetime.fromtimestamp(ts, datetime.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")


def _duration(ms: float | None) -> str:
    if ms is None:
        return ""
    if ms < 10:
        return f"{ms:.1f} ms"
    return f"{ms:.0f} ms" if ms < 10_000 else f"{ms / 1000:.1f} s"


# -- commands ---------------------------------------------------------------------------------


def _filter(args: argparse.Namespace) -> Any:
    from autoflow.runners import store

    return store.RunFilter(
        workflow=args.workflow,
        namespace=args.namespace,
        phase=args.phase,
        trigger=args.trigger,
        since=when(args.since),
        until=when(args.until),
        error=args.error,
    )


async def _list(st: Any, args: argparse.Namespace, out: TextIO) -> int:
    page = await st.list_runs(_filter(args), limit=args.limit, cursor=args.cursor)
    if args.output == "json":
        doc = {"runs": [r.to_json() for r in page.runs], "nextCursor": page.next_cursor}
        json.dump(doc, out, indent=2)
        out.write("\n")
        return 0
    rows = [
        [
            r.run_id,
            r.workflow,
            r.phase,
            r.trigger,
            iso(r.started_at),
            _duration(r.duration_ms),
            _short(r.error or "", 60),
        ]
        for r in page.runs
    ]
    _table(out, ["RUN", "WORKFLOW", "PHASE", "TRIGGER", "STARTED", "TOOK", "ERROR"], rows)
    if page.next_cursor:
        out.write(f"more: --cursor {page.next_cursor}\n")
    return 0


async def _show(st: Any, args: argparse.Namespace, out: TextIO) -> int:
    from autoflow.crds import errors

    run = await st.get_run(args.run_id)
    if run is None:
        raise errors.AutoflowError(f"no run {args.run_id!r} in the run store at {st.display_url}")
    if args.output == "json":
        json.dump(run.to_json(), out, indent=2, default=str)
        out.write("\n")
        return 0
    s = run.summary
    out.write(f"run {s.run_id} of {s.workflow}: {s.phase}\n")
    namespace = f"  namespace {s.namespace}" if s.namespace else ""
    out.write(
        f"  started {iso(s.started_at)} by {s.trigger}"
        f"{' (' + s.started_by + ')' if s.started_by else ''}{namespace}\n"
    )
    if s.finished_at is not None:
        out.write(f"  finished {iso(s.finished_at)} after {_duration(s.duration_ms)}\n")
    stored = await st.get_spec(s.spec_hash) if s.spec_hash else None
    version = f"(autoflow runs spec {s.run_id})" if stored is not None else "(spec not stored)"
    out.write(f"  spec {s.spec_hash} {version}\n")
    if s.error:
        out.write(f"  error: {s.error}\n")
    rows = []
    for step in run.steps:
        detail = step.error or step.message or ""
        rows.append(
            [
                step.step,
                step.phase,
                str(step.attempts),
                _duration(step.duration_ms),
                _short(detail, 70),
            ]
        )
        # Attempts worth a look: failed ones that were retried, and those in flight (a final
        # failure is the step's own error, already on its line).
        for a in step.tries if len(step.tries) > 1 or step.phase == "Running" else ():
            if a.outcome != "Succeeded":
                label = f"  attempt {a.attempt}" + (f" item {a.item}" if a.item >= 0 else "")
                rows.append([label, a.outcome, "", "", _short(a.error or "", 70)])
    out.write("\n")
    _table(out, ["STEP", "PHASE", "ATTEMPTS", "TOOK", "ERROR / MESSAGE"], rows)
    return 0


async def _stats_of(st: Any, args: argparse.Namespace) -> list[Any]:
    from autoflow.crds import errors, meta

    try:
        bucket = meta.parse_duration(args.bucket)
    except ValueError as exc:
        raise errors.InputError(f"--bucket: {exc}") from None
    since = when(args.since) if args.since else 0.0
    until = when(args.until) or time.time() + 1
    return list(
        await st.stats(
            since=since or 0.0,
            until=until,
            namespace=args.namespace or None,
            workflow=args.workflow,
            bucket=bucket,
        )
    )


async def _stats(st: Any, args: argparse.Namespace, out: TextIO) -> int:
    stats = await _stats_of(st, args)
    if args.output == "json":
        json.dump({"workflows": [w.to_json() for w in stats]}, out, indent=2)
        out.write("\n")
        return 0
    if args.output == "csv":
        _stats_csv(stats, out)
        return 0
    rows = []
    for w in stats:
        rows.append(
            _figure_row(f"{w.namespace}/{w.workflow}" if w.namespace else w.workflow, w.runs)
        )
        rows += [_figure_row(f"  {name}", fig) for name, fig in w.steps.items()]
    _table(out, ["WORKFLOW / STEP", "RUNS", "OK", "FAILED", "SUCCESS", "P50", "P95"], rows)
    return 0


def _figure_row(name: str, fig: Any) -> list[str]:
    ratio = fig.success_ratio
    return [
        name,
        str(fig.count),
        str(fig.succeeded),
        str(fig.failed),
        "" if ratio is None else f"{ratio:.1%}",
        _duration(fig.p50_ms),
        _duration(fig.p95_ms),
    ]


STATS_COLUMNS = [
    "namespace",
    "workflow",
    "step",
    "count",
    "succeeded",
    "failed",
    "successRatio",
    "p50Ms",
    "p95Ms",
]
RUN_COLUMNS = [
    "runId",
    "workflow",
    "namespace",
    "phase",
    "trigger",
    "startedBy",
    "specHash",
    "startedAt",
    "finishedAt",
    "durationMs",
    "error",
]


def _stats_csv(stats: Sequence[Any], out: TextIO) -> None:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(STATS_COLUMNS)
    for w in stats:
        for step, fig in [("", w.runs), *w.steps.items()]:
            doc = fig.to_json()
            writer.writerow([w.namespace, w.workflow, step, *(doc[k] for k in STATS_COLUMNS[3:])])


async def _export(st: Any, args: argparse.Namespace, out: TextIO) -> int:
    if args.what == "stats":
        stats = await _stats_of(st, args)
        if args.output == "csv":
            _stats_csv(stats, out)
        else:
            for w in stats:
                out.write(json.dumps(w.to_json()) + "\n")
        return 0
    writer = csv.writer(out, lineterminator="\n")
    if args.output == "csv":
        writer.writerow(RUN_COLUMNS)
    where, cursor = _filter(args), None
    while True:  # every page: an export is the whole matching history
        page = await st.list_runs(where, limit=1000, cursor=cursor)
        for run in page.runs:
            doc = run.to_json()
            doc["startedAt"], doc["finishedAt"] = iso(run.started_at), iso(run.finished_at)
            if args.output == "csv":
                writer.writerow(["" if doc[k] is None else doc[k] for k in RUN_COLUMNS])
            else:
                out.write(json.dumps(doc) + "\n")
        cursor = page.next_cursor
        if cursor is None:
            return 0


def _actor() -> str:
    """Who ran the command, for the audit: the operating account (never a data subject)."""
    return f"cli:{os.environ.get('USER') or 'unknown'}"


def _positive(name: str, text: str | None, kind: type[float] | type[int]) -> Any:
    from autoflow.crds import errors

    if text is None or text == "":
        return None
    try:
        value = kind(text)
    except ValueError:
        raise errors.InputError(f"{name} is a number; got {text!r}") from None
    if value <= 0:
        raise errors.InputError(f"{name} is more than 0; got {text!r}")
    return value


async def _purge_expired(st: Any, args: argparse.Namespace, out: TextIO) -> int:
    from autoflow.crds import errors
    from autoflow.runners import store

    if any(
        getattr(args, k) for k in ("workflow", "namespace", "phase", "trigger", "before", "run_id")
    ):
        raise errors.InputError("--expired applies retention; it takes no other filter")
    days = args.days if args.days is not None else os.environ.get(ENV_DAYS)
    runs = args.max_runs if args.max_runs is not None else os.environ.get(ENV_MAX_RUNS)
    default = store.Retention(
        days=_positive("--days", None if days is None else str(days), float),
        max_runs=_positive("--max-runs", None if runs is None else str(runs), int),
    )
    count = await st.purge_expired(default=default, actor=_actor())
    if args.output == "json":
        out.write(json.dumps({"purged": count}) + "\n")
    else:
        out.write(f"purged {count} expired run{'s' if count != 1 else ''}\n")
    return 0


async def _erase(st: Any, args: argparse.Namespace, out: TextIO) -> int:
    count = await st.erase(args.subject, actor=_actor())
    if args.output == "json":
        out.write(json.dumps({"erased": count}) + "\n")
    else:
        out.write(f"erased {count} run{'s' if count != 1 else ''} of that data subject\n")
    return 0


async def _audit(st: Any, args: argparse.Namespace, out: TextIO) -> int:
    trail = await st.audit(limit=args.limit)
    if args.output == "json":
        json.dump({"audit": [a.to_json() for a in trail]}, out, indent=2)
        out.write("\n")
        return 0
    rows = [[iso(a.at), a.action, a.actor, str(a.count), _short(a.what, 70)] for a in trail]
    _table(out, ["WHEN", "ACTION", "WHO", "RUNS", "WHAT"], rows, empty="no purges or erasures")
    return 0


async def _versions(st: Any, args: argparse.Namespace, out: TextIO) -> int:
    found = await st.versions(args.workflow, namespace=args.namespace)
    if args.output == "json":
        json.dump({"versions": [v.to_json() for v in found]}, out, indent=2)
        out.write("\n")
        return 0
    rows = [
        [v.spec_hash, str(v.runs), iso(v.first_run), iso(v.last_run), "yes" if v.stored else "no"]
        for v in found
    ]
    _table(out, ["SPEC", "RUNS", "FIRST RUN", "LAST RUN", "STORED"], rows)
    return 0


async def _spec(st: Any, args: argparse.Namespace, out: TextIO) -> int:
    import yaml

    from autoflow.crds import errors, meta

    run = await st.get_run(args.ref)
    spec_hash = run.summary.spec_hash if run is not None else args.ref
    spec = await st.get_spec(spec_hash)
    if spec is None:
        what = f"run {args.ref!r}'s spec {spec_hash}" if run is not None else repr(args.ref)
        raise errors.AutoflowError(
            f"no spec for {what} in the run store at {st.display_url} (the runner that "
            "started the run did not send it)"
        )
    versions = await st.versions(run.summary.workflow) if run is not None else []
    name = run.summary.workflow if run is not None else ""
    metadata: dict[str, Any] = {"name": name or "RENAME-ME"}
    if run is not None and run.summary.namespace:
        metadata["namespace"] = run.summary.namespace
    doc = {"apiVersion": meta.API_VERSION, "kind": "Workflow", "metadata": metadata, "spec": spec}
    if args.output == "json":
        json.dump(doc, out, indent=2)
        out.write("\n")
        return 0
    newest = versions[0].spec_hash if versions else None
    note = " (the newest version run)" if newest == spec_hash else ""
    out.write(f"# spec {spec_hash}{note}, from the run store; apply it to restore\n")
    out.write(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    return 0


async def _purge(st: Any, args: argparse.Namespace, out: TextIO) -> int:
    from autoflow.runners import store

    if args.expired:
        return await _purge_expired(st, args, out)
    where = store.RunFilter(
        workflow=args.workflow,
        namespace=args.namespace,
        phase=args.phase,
        trigger=args.trigger,
        until=when(args.before),
        run_id=args.run_id,
    )
    count = await st.purge(where, actor=_actor())  # refused without a filter
    if args.output == "json":
        out.write(json.dumps({"purged": count}) + "\n")
    else:
        out.write(f"purged {count} run{'s' if count != 1 else ''}\n")
    return 0


# -- tables -----------------------------------------------------------------------------------


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def _table(out: TextIO, header: list[str], rows: list[list[str]], empty: str = "no runs") -> None:
    if not rows:
        out.write(f"{empty}\n")
        return
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


# -- starting a pool run ----------------------------------------------------------------------


async def _start(st: Any, args: argparse.Namespace, out: TextIO) -> int:
    """``runs start NS/WF``: records the run (and queues it on JetStream with ``--nats``)."""
    from autoflow.crds import errors, meta
    from autoflow.runners.definitions import inputs as inputs_mod
    from autoflow.runners.pool import RunRequest

    namespace, sep, name = args.target.partition("/")
    if not sep or not namespace or not name:
        raise errors.InputError(f"runs start takes NAMESPACE/WORKFLOW; got {args.target!r}")
    wait = None
    if args.wait:
        try:
            wait = meta.parse_duration(args.wait)
        except ValueError as exc:
            raise errors.InputError(f"--wait: {exc}") from None
    wf = await _find_workflow(args, namespace, name)
    raw: dict[str, Any] = {}
    for item in args.input:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise errors.InputError(f"--input takes NAME=VALUE; got {item!r}")
        raw[key] = value
    values = inputs_mod.resolve(wf.spec.inputs, raw, errors.Where(resource=wf.ref), from_text=True)
    request = RunRequest(namespace, name, values, "manual", os.environ.get("USER", "") or "cli")
    nats_url = args.nats or os.environ.get("AUTOFLOW_NATS_URL")
    mode = wf.spec.runtime.mode if wf.spec.runtime is not None else "job"
    if nats_url and mode != "pool":
        raise errors.InputError(
            f"{wf.ref} runs in runtime.mode job: start it with kubectl create (a WorkflowRun), "
            "or set runtime.mode: pool"
        )
    outcome = None
    if nats_url:
        from autoflow.runners.pool import jetstream

        nc = await jetstream.connect(nats_url, name="autoflow-runs-start")
        launcher = jetstream.JetStreamLauncher(
            st, lambda ns, n: wf, nc, settings=jetstream.Settings.from_env(os.environ)
        )
        try:
            await launcher.start()
            started = await launcher.launch(request)
            if wait is not None:
                outcome = await launcher.wait(started.run_id, wait)
        finally:
            await launcher.aclose()
            await nc.drain()
    else:
        from autoflow.runners.pool import recording

        class _RecordOnly(recording.RecordingLauncher):
            async def _hand_off(self, run_id: str, request: RunRequest) -> None:
                return None  # autoflow serve takes up Pending runs of its store

        started = await _RecordOnly(st, lambda ns, n: wf).launch(request)
        if wait is not None:
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                run = await st.get_run(started.run_id)
                if run is not None and run.summary.phase in ("Succeeded", "Failed", "Cancelled"):
                    from autoflow.runners.pool import Outcome

                    outputs = run.outputs if isinstance(run.outputs, dict) else {}
                    outcome = Outcome(
                        run.summary.run_id, run.summary.phase, outputs, run.summary.error
                    )
                    break
                await asyncio.sleep(0.2)
    if args.output == "json":
        body: dict[str, Any] = {"runId": started.run_id, "duplicate": started.duplicate}
        if outcome is not None:
            body.update(phase=outcome.phase, outputs=dict(outcome.outputs), error=outcome.error)
        json.dump(body, out, indent=2, default=str)
        out.write("\n")
    else:
        out.write(f"run {started.run_id} of {namespace}/{name} started\n")
        if outcome is not None:
            out.write(f"{outcome.phase}" + (f": {outcome.error}" if outcome.error else "") + "\n")
            if outcome.outputs:
                json.dump(dict(outcome.outputs), out, indent=2, default=str)
                out.write("\n")
        elif wait is not None:
            out.write(f"not ended within {args.wait}: autoflow runs show {started.run_id}\n")
    if outcome is not None and outcome.phase != "Succeeded":
        return 1
    return 0


async def _find_workflow(args: argparse.Namespace, namespace: str, name: str) -> Any:
    from autoflow.crds import errors, workflow

    if args.file:
        from autoflow.runners.definitions import loader

        for res in loader.load_file(args.file):
            if isinstance(res, workflow.Workflow) and res.metadata.name == name:
                if not res.metadata.namespace:
                    res.metadata.namespace = namespace
                return res
        raise errors.ManifestError(f"no Workflow {name!r} in {args.file}")
    from autoflow.runners import kube

    async with kube.Client.from_config(args.kubeconfig) as client:
        found = await client.get_or_none(kube.paths.workflow(namespace, name))
    if found is None:
        raise errors.AutoflowError(f"no Workflow {namespace}/{name} in the cluster")
    return workflow.Workflow.model_validate(found)
