"""autoflow.operator."""
