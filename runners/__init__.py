"""autoflow.runners."""
