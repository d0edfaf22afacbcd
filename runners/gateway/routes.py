"""The gateway's route table: which Workflow trigger answers ``/hooks/<namespace><path>``.

Built from Workflows (a directory of YAML files, or a Kubernetes watch: ``sources``) by pure
code: ``routes_of(workflow)`` compiles each webhook trigger once (its inputs mapping and
delivery-id expression), and ``RouteTable`` keeps them by (namespace, path). Two Workflows
of a namespace that claim one path: the one put first keeps it, the other is reported (and
``autoflow validate`` reports a path used twice inside one Workflow).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from typing import Any

from autoflow.crds import errors, webhook, workflow
from autoflow.runners.definitions import triggers

log = logging.getLogger("autoflow.gateway")

PREFIX = "/hooks"


@dataclasses.dataclass(frozen=True)
class Route:
    """One webhook trigger of one Workflow, ready to serve."""

    namespace: str
    workflow: workflow.Workflow
    index: int
    trigger: webhook.WebhookTrigger
    path: str  # under /hooks/<namespace>
    inputs: triggers.InputMapping | None
    delivery: triggers.Render | None

    @property
    def name(self) -> str:
        return self.workflow.metadata.name or ""

    @property
    def key(self) -> str:
        """The trigger's identity in de-duplication keys: ``<ns>/<workflow>/triggers[i]``."""
        return f"{self.namespace}/{self.name}/triggers[{self.index}]"

    @property
    def url_path(self) -> str:
        return f"{PREFIX}/{self.namespace}{self.path}"


def routes_of(wf: workflow.Workflow, namespace: str) -> list[Route]:
    """The webhook routes of ``wf``; a trigger whose expressions do not compile is left out
    (and logged: ``autoflow validate`` and admission report it with its field)."""
    found: list[Route] = []
    name = wf.metadata.name or ""
    for index, trigger in enumerate(wf.spec.triggers):
        hook = trigger.webhook
        if hook is None:
            continue
        where = errors.Where(resource=wf.ref, field=f"triggers[{index}].webhook")
        try:
            inputs = (
                triggers.compile_mapping(hook.inputs, where, triggers.WEBHOOK_ROOTS)
                if hook.inputs is not None
                else None
            )
            delivery = None
            if hook.delivery_id is not None and hook.delivery_id.expression is not None:
                delivery = triggers.compile_delivery(
                    hook.delivery_id.expression, where, triggers.WEBHOOK_ROOTS
                )
        except errors.ExpressionError as exc:
            log.warning("webhook not served: %s", exc)
            continue
        found.append(Route(namespace, wf, index, hook, hook.route(name), inputs, delivery))
    return found


class RouteTable:
    """Routes by (namespace, path), replaced a Workflow at a time."""

    def __init__(self) -> None:
        self._by_workflow: dict[tuple[str, str], list[Route]] = {}
        self._by_path: dict[tuple[str, str], Route] = {}

    def put(self, wf: workflow.Workflow, namespace: str) -> None:
        self.remove(namespace, wf.metadata.name or "")
        routes = routes_of(wf, namespace)
        self._by_workflow[(namespace, wf.metadata.name or "")] = routes
        for route in routes:
            taken = self._by_path.get((namespace, route.path))
            if taken is not None and taken.name != route.name:
                log.warning(
                    "webhook %s of Workflow %s/%s not served: Workflow %s has that path",
                    route.url_path,
                    namespace,
                    route.name,
                    taken.name,
                )
                continue
            self._by_path.setdefault((namespace, route.path), route)

    def remove(self, namespace: str, name: str) -> None:
        for route in self._by_workflow.pop((namespace, name), []):
            if self._by_path.get((namespace, route.path)) is route:
                del self._by_path[(namespace, route.path)]
        # A path another Workflow was refused may be free now.
        for (ns, _), routes in list(self._by_workflow.items()):
            if ns == namespace:
                for route in routes:
                    self._by_path.setdefault((namespace, route.path), route)

    def replace_all(self, workflows: Iterable[tuple[workflow.Workflow, str]]) -> None:
        self._by_workflow.clear()
        self._by_path.clear()
        for wf, namespace in workflows:
            self.put(wf, namespace)

    def find(self, namespace: str, path: str) -> Route | None:
        return self._by_path.get((namespace, path))

    def routes(self) -> list[Route]:
        return sorted(self._by_path.values(), key=lambda r: r.url_path)

    def describe(self) -> list[dict[str, Any]]:
        return [
            {
                "path": r.url_path,
                "workflow": f"{r.namespace}/{r.name}",
                "auth": r.trigger.auth.scheme,
            }
            for r in self.routes()
        ]
