"""The SaaS connector catalogue: one declarative definition (``<name>.yaml``) per service.

Not Python: the registry reads a definition when a workflow uses its connector, and
``declarative.load`` turns it into a connector. The package exists so the files ship as
package data; ``docs/writing-connectors.md`` describes the format.
"""
