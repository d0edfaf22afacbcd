"""One router module per resource (workflows, runs, events, integrations, catalogue)."""
