"""autoflow.connectors."""
