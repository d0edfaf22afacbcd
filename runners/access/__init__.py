"""Integration access: what a step is given of an Integration, and what it may spend of it.

integrations.py  an Integration + its secrets → the step's ``sdk.IntegrationInfo``
oauth2.py        OAuth2 access tokens from a token endpoint (authlib), kept current
limits.py        rate limits and concurrency per Integration, local or shared in Redis
probe.py         the health probe of an Integration (the operator's Ready condition)
redact.py        secrets read for a run never reach its logs, outputs or errors
"""
