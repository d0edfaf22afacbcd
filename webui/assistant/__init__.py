"""The AI assistant: drafts and repairs Workflows from a sentence, explains them.

``draft`` runs the loop (ground, ask, validate, repair), ``schema`` the model-facing Workflow
schema, ``catalogue`` the retrieval of relevant actions, ``routes`` the web API's router.
Usable without the web server: ``autoflow ai draft`` calls ``draft.draft`` directly.
"""
