"""The Job mode of the data plane: one Kubernetes Job runs one WorkflowRun.

- ``runner``: ``autoflow runner --run NAMESPACE/NAME``, the pod's entry point: read the run,
  execute it with the engine, resume after the last recorded step when a pod is replaced;
- ``integrations``: the run's Integrations and their Secrets, read from the API at the moment
  of use (the operator's health probes read them the same way).

All of its Kubernetes I/O goes through ``runners.kube``.
"""
