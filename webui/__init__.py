"""autoflow.webui: the web API (``api/``, FastAPI) over two backends behind one interface
(``backend.py``): the workspace (``workspace.py``: YAML files, SQLite, runs in this process
through ``runners.pool``'s in-process launcher) and the cluster (``cluster.py``:
Kubernetes resources, every call impersonating the signed-in person). ``texts.py`` checks a
Workflow's YAML text as ``autoflow validate`` does; ``settings.py`` is ``autoflow webui``'s
configuration. docs/webui.md describes it all."""
