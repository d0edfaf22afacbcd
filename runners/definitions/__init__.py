"""Definitions: from the user's files and resources to a checked, runnable Plan.

documents.py   reading YAML and JSON with one set of limits, lines kept for messages
loader.py      manifests into API models (Workflow, WorkflowRun, Integration, Schedule)
checks.py      every problem of one manifest, as ``autoflow validate`` reports it
inputs.py      a run's inputs checked against what the Workflow declares
plan.py        a Workflow compiled into a Plan: the DAG, actions and expressions
"""
