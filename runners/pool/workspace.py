"""A local workspace for ``autoflow serve``: Workflows and Integrations as YAML files in a folder.

``Workspace(dir)`` reads ``dir/*.yaml`` and ``dir/*.yml`` (not sub-folders: ``.autoflow/``
holds the run store); the gateway's ``DirectorySource`` serves the webhooks of one. A
Workflow's namespace is its ``metadata.namespace``, else ``default`` (filled in).
``refresh()`` reads the files again when one changed, was added or went (by name, size and
modification time) and says whether anything did; a file that does not load is reported in
``problems`` and skipped, the others still serve. Integrations' secrets come from
``AUTOFLOW_SECRET_<INTEGRATION>_<KEY>`` or the secrets file, as for ``autoflow run``. Given
as ``secrets_file``, that file is watched like the others: a secret or an OAuth2 token the web
UI writes there serves the next run without a restart.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path

from autoflow.crds import errors, integration, workflow
from autoflow.runners.definitions import loader
from autoflow.runners.local import run as local_run

log = logging.getLogger("autoflow.serve")

DEFAULT_NAMESPACE = "default"


class Workspace:
    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        secrets: Mapping[str, Mapping[str, str]] | None = None,
        env: Mapping[str, str] | None = None,
        secrets_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.directory = Path(directory)
        self._secrets = secrets
        self._secrets_file = Path(secrets_file) if secrets_file is not None else None
        self._env = env
        self.workflows: dict[tuple[str, str], workflow.Workflow] = {}
        self.integrations: list[integration.Integration] = []
        self.problems: list[str] = []
        self._provider = local_run.LocalIntegrations([], secrets, env)
        self._seen: dict[str, tuple[int, float]] | None = None

    def files(self) -> list[Path]:
        return sorted(
            p for p in self.directory.iterdir() if p.is_file() and p.suffix in (".yaml", ".yml")
        )

    def _stamp(self) -> dict[str, tuple[int, float]]:
        stamps: dict[str, tuple[int, float]] = {}
        for path in self.files():
            try:
                st = path.stat()
            except OSError:
                continue
            stamps[path.name] = (st.st_size, st.st_mtime)
        if self._secrets_file is not None:
            try:
                st = self._secrets_file.stat()
            except OSError:
                pass
            else:  # "/" cannot begin a file name of the folder
                stamps["/secrets"] = (st.st_size, st.st_mtime)
        return stamps

    def refresh(self) -> bool:
        """Reads the files again if any changed; True when it did."""
        stamps = self._stamp()
        if stamps == self._seen:
            return False
        self._seen = stamps
        self.load()
        return True

    def load(self) -> None:
        flows: dict[tuple[str, str], workflow.Workflow] = {}
        found: list[integration.Integration] = []
        problems: list[str] = []
        if self._secrets_file is not None and self._secrets_file.is_file():
            try:
                self._secrets = local_run.read_secrets_file(str(self._secrets_file))
            except errors.AutoflowError as exc:  # the last good values still serve
                problems.append(str(exc))
        for path in self.files():
            try:
                resources = loader.load_file(str(path))
            except errors.AutoflowError as exc:
                problems.append(str(exc))
                continue
            for res in resources:
                if isinstance(res, workflow.Workflow):
                    ns = res.metadata.namespace or DEFAULT_NAMESPACE
                    key = (ns, res.metadata.name or "")
                    if key in flows:
                        problems.append(f"{path}: a second Workflow {ns}/{key[1]}; the first wins")
                        continue
                    if res.metadata.namespace != ns:  # runs, events and the UI name it
                        meta = res.metadata.model_copy(update={"namespace": ns})
                        res = res.model_copy(update={"metadata": meta})
                    flows[key] = res
                elif isinstance(res, integration.Integration):
                    found.append(res)
        for problem in problems:
            log.warning("%s", problem)
        self.workflows, self.integrations, self.problems = flows, found, problems
        self._provider = local_run.LocalIntegrations(found, self._secrets, self._env)

    @property
    def secrets(self) -> Mapping[str, Mapping[str, str]] | None:
        """The secrets file's values (Integration or Secret name → key → value), if given."""
        return self._secrets

    def workflow(self, namespace: str, name: str) -> workflow.Workflow | None:
        return self.workflows.get((namespace or DEFAULT_NAMESPACE, name))

    def provider(self, namespace: str) -> local_run.LocalIntegrations:
        return self._provider
