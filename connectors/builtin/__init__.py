"""The built-in code connectors, one module each: core, http, postgres, redis, nats, email,
slack.

Each module defines ``connector`` (an ``sdk.Connector``), named in the ``autoflow.connectors``
entry-point group and in ``registry.BUILTIN``. They are independent of each other (an
import-linter contract checks it): what two of them share lives in the SDK.
"""
