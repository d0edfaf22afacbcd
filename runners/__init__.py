"""The data plane: everything that runs a workflow, in every place a run happens.

    engine/        the engine (``engine.Run``) and the run journal
    expressions/   the sandboxed ``${ }`` expression language of manifests
    definitions/   files and resources → API models → a checked Plan (validate's checks)
    access/        Integration access: credentials, OAuth2, rate limits, health probes
    local/         ``autoflow run`` on a laptop
    job.py         the runner in Job mode (one Kubernetes Job per WorkflowRun)
    kube.py        the thin Kubernetes API layer; kube_integrations.py reads Integrations there
    logs.py        log output for every entry point: human lines or JSON, run and step ids

Dependencies point down: local and the Job runner use the engine; the engine uses
definitions, expressions and access; nothing here imports the operator or the web UI.
"""
