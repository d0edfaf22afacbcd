"""Autoflow: Kubernetes-native, no-code business-process automation.

The components live in the repository's top-level directories (``crds/``, ``runners/``,
``connectors/``, ``operator/``, ``webui/``, ``cli/``) and are imported as
``autoflow.<component>``; this package only joins them into one namespace.
"""

__version__ = "0.1.0"
