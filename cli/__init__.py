"""autoflow.cli."""
