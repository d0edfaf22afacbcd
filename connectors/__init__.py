"""Connectors: what a step calls. Three rooms and the registry over them::

    registry.py    finding connectors by name: built-ins, the catalogue, the entry points
    reference.py   docs/connectors.md generated from the registry
    builtin/       the code connectors for protocols (core, http, postgres, redis, nats, ...)
    declarative/   the engine of declarative SaaS connectors, and their catalogue (data files)
    sdk/           what every connector is built from: Connector, Action, ActionContext,
                   redaction and the shared HTTP machinery

``builtin`` and ``declarative`` both stand on ``sdk`` and never import each other; the
registry imports a connector only when a workflow uses it.
"""
