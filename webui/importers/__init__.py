"""Importers: workflows written for other automation tools, converted into Autoflow manifests.

Each importer is pure: an export document in, manifest text and a report out (``n8n``). The web
API serves them through ``routes`` and the CLI through ``autoflow import``.
"""
