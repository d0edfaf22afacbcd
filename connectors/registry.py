"""Finding connectors by name: built-ins, the SaaS catalogue and the entry-point group.

A connector module is imported only when a workflow uses it (or when someone lists them all),
so ``autoflow run`` on a one-step workflow pays for one connector, not the catalogue. The
catalogue is one declarative definition per SaaS service, ``connectors/catalog/<name>.yaml``:
listing names reads the directory, and only a used connector's file is read and loaded
(``declarative.load``). A name is looked up in ``BUILTIN`` first, then the catalogue, then
the ``autoflow.connectors`` entry points, which third parties ship in packages declaring::

    [project.entry-points."autoflow.connectors"]
    shop = "shop_autoflow:connector"
"""

from __future__ import annotations

import importlib
import pathlib
import re
from importlib import metadata

from autoflow.connectors import sdk
from autoflow.crds import errors

GROUP = "autoflow.connectors"
# The SaaS catalogue shipped with Autoflow: one declarative definition file per service.
CATALOG = pathlib.Path(__file__).parent / "declarative" / "catalog"
_CATALOG_NAME = re.compile(r"^[a-z][a-z0-9-]*$")

# Built-ins are known without reading package metadata, which costs tens of milliseconds.
BUILTIN: dict[str, str] = {
    "core": "autoflow.connectors.builtin.core:connector",
    "http": "autoflow.connectors.builtin.http:connector",
    "postgres": "autoflow.connectors.builtin.postgres:connector",
    "redis": "autoflow.connectors.builtin.redis:connector",
    "nats": "autoflow.connectors.builtin.nats:connector",
    "email": "autoflow.connectors.builtin.email:connector",
    "slack": "autoflow.connectors.builtin.slack:connector",
    "ai": "autoflow.connectors.builtin.ai:connector",
}

# Integration types served by a connector of another name: an Integration of type ``openai``
# holds a key for the ``ai`` connector's steps. Every other type is its connector's name.
INTEGRATION_TYPES: dict[str, str] = {"openai": "ai", "anthropic": "ai"}


def connector_for_type(integration_type: str) -> str:
    """The connector an Integration of ``integration_type`` is for."""
    return INTEGRATION_TYPES.get(integration_type, integration_type)


class Registry:
    """Name → connector, loaded lazily and cached."""

    def __init__(
        self,
        targets: dict[str, str] | None = None,
        *,
        entry_points: bool = True,
        catalog: pathlib.Path | None = CATALOG,
    ) -> None:
        self._targets = dict(BUILTIN if targets is None else targets)
        self._catalog = catalog
        self._scan_entry_points = entry_points
        self._scanned = False
        self._loaded: dict[str, sdk.Connector] = {}

    def add(self, connector: sdk.Connector) -> None:
        """Register a connector object directly (tests, embedding)."""
        self._loaded[connector.name] = connector

    def _scan(self) -> None:
        if self._scanned or not self._scan_entry_points:
            return
        self._scanned = True
        for ep in metadata.entry_points(group=GROUP):
            self._targets.setdefault(ep.name, ep.value)

    def integration_types(self) -> list[str]:
        """Every Integration type some connector serves: connector names and their aliases."""
        names = self.names()
        aliases = [t for t, c in INTEGRATION_TYPES.items() if c in names]
        return sorted({*names, *aliases})

    def names(self) -> list[str]:
        self._scan()
        return sorted(set(self._targets) | set(self._loaded) | set(self._catalog_names()))

    def _catalog_names(self) -> list[str]:
        if self._catalog is None or not self._catalog.is_dir():
            return []
        return [p.stem for p in self._catalog.glob("*.yaml") if _CATALOG_NAME.match(p.stem)]

    def _catalog_file(self, name: str) -> pathlib.Path | None:
        if self._catalog is None or not _CATALOG_NAME.match(name):
            return None
        path = self._catalog / f"{name}.yaml"
        return path if path.is_file() else None

    def connector(self, name: str) -> sdk.Connector:
        if name in self._loaded:
            return self._loaded[name]
        if name not in self._targets and (path := self._catalog_file(name)):
            # Imported here: only a workflow that uses a catalogue connector pays for the engine.
            from autoflow.connectors import declarative

            self._loaded[name] = declarative.load(path)
            return self._loaded[name]
        if name not in self._targets:
            self._scan()
        target = self._targets.get(name)
        if target is None:
            raise errors.ManifestError(
                f"unknown connector {name!r} (known: {', '.join(self.names())})"
            )
        module_name, _, attr = target.partition(":")
        try:
            found = getattr(importlib.import_module(module_name), attr or "connector")
        except (ImportError, AttributeError) as exc:
            raise errors.ManifestError(f"connector {name!r} failed to load: {exc}") from exc
        if not isinstance(found, sdk.Connector):
            raise errors.ManifestError(f"connector {name!r} ({target}) is not an sdk.Connector")
        self._loaded[name] = found
        return found

    def action(self, uses: str) -> sdk.Action:
        """The action a step's ``uses`` names, or a ManifestError naming what is known."""
        connector_name, _, action_name = uses.partition(".")
        connector = self.connector(connector_name)
        action = connector.actions.get(action_name)
        if action is None:
            known = ", ".join(sorted(connector.actions))
            raise errors.ManifestError(
                f"connector {connector_name!r} has no action {action_name!r} (actions: {known})"
            )
        return action


_default: Registry | None = None


def default() -> Registry:
    """The process-wide registry."""
    global _default
    if _default is None:
        _default = Registry()
    return _default
