"""API types of Autoflow (group ``autoflow.dev``, version ``v1alpha1``) and their CRDs.

The pydantic models here are the one source of truth: the CRD manifests in this directory,
the JSON Schemas of the web UI and the schema the AI assistant answers in are generated from
them (``autoflow.crds.generate``). This package imports nothing else of the project.
"""
