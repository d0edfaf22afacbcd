"""The webhook gateway: HTTP requests from the outside world become runs.

``server.create_app`` is the ASGI app; ``routes`` builds its route table from Workflows'
``webhook`` triggers, ``sources`` keeps that table current (a directory, or a Kubernetes watch)
and reads webhook secrets, ``auth`` verifies each request in constant time. Runs start through
the ``runners.pool`` Launcher contract, de-duplicated by (trigger, delivery id) in the store.
"""
