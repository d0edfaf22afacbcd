"""autoflow.webui."""
