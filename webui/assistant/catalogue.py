"""Finding the connector actions a request is about: a retrieval step, not the whole catalogue.

Over a hundred actions with their schemas would fill the model's context and drown the few
that matter, so the assistant sends only the best matches for the request (``search``), each
as a short card (``Card.text``: what it does, its parameters and which are required, the
Integration type it needs). Matching is lexical over the action's name, its connector's
name and both descriptions, with a small table of the words people use for the families of
services (mail, payments, CRM, tickets, ...); the request is short and the vocabulary of the
catalogue is small, so this finds the right connectors without an embedding model.
``search`` is also how a repair round suggests the real action for one the model made up.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Iterable
from typing import Any

from autoflow.connectors import registry as registry_mod
from autoflow.connectors import sdk

# Words of a request → connector names they point to.
FAMILIES: dict[str, tuple[str, ...]] = {
    "mail": ("email", "sendgrid", "mailchimp"),
    "email": ("email", "sendgrid"),
    "e-mail": ("email", "sendgrid"),
    "newsletter": ("mailchimp", "sendgrid"),
    "subscriber": ("mailchimp",),
    "audience": ("mailchimp",),
    "marketing": ("mailchimp", "sendgrid", "hubspot"),
    "campaign": ("mailchimp",),
    "payment": ("stripe",),
    "pay": ("stripe",),
    "invoice": ("stripe",),
    "refund": ("stripe",),
    "charge": ("stripe",),
    "customer": ("stripe", "hubspot", "salesforce"),
    "crm": ("hubspot", "salesforce", "pipedrive"),
    "lead": ("hubspot", "salesforce", "pipedrive"),
    "deal": ("hubspot", "pipedrive"),
    "contact": ("hubspot", "salesforce", "sendgrid"),
    "chat": ("slack", "teams", "discord"),
    "channel": ("slack", "teams", "discord"),
    "message": ("slack", "teams", "discord"),
    "post": ("slack", "teams", "discord"),
    "notify": ("slack", "teams", "email"),
    "alert": ("slack", "teams", "email"),
    "ticket": ("jira", "github", "asana"),
    "issue": ("jira", "github"),
    "bug": ("jira", "github"),
    "task": ("asana", "trello", "jira"),
    "project": ("asana", "jira", "trello"),
    "card": ("trello", "teams"),
    "board": ("trello",),
    "file": ("dropbox", "slack"),
    "folder": ("dropbox",),
    "document": ("notion", "dropbox"),
    "page": ("notion",),
    "wiki": ("notion",),
    "spreadsheet": ("airtable",),
    "table": ("airtable", "postgres"),
    "record": ("airtable", "salesforce"),
    "database": ("postgres", "notion", "airtable"),
    "sql": ("postgres",),
    "row": ("postgres", "airtable"),
    "cache": ("redis",),
    "queue": ("redis", "nats"),
    "event": ("nats",),
    "api": ("http",),
    "webhook": ("http", "slack"),
    "url": ("http",),
    "summarize": ("ai",),
    "summary": ("ai",),
    "classify": ("ai",),
    "extract": ("ai",),
    "sentiment": ("ai",),
    "llm": ("ai",),
    "gpt": ("ai",),
    "wait": ("core",),
    "delay": ("core",),
    "condition": ("core",),
    "transform": ("core",),
    "log": ("core",),
}
_WORD = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)?")
_STOP = frozenset(
    {"a", "an", "the", "and", "or", "of", "to", "in", "on", "for", "with", "when", "then"}
    | {"from", "into", "is", "are", "be", "it", "its", "that", "this", "by", "as", "at"}
)


@dataclasses.dataclass(frozen=True, slots=True)
class Card:
    """One action as the model is shown it."""

    uses: str
    description: str
    params: tuple[tuple[str, str, bool], ...]  # name, type, required
    words: frozenset[str]

    def text(self) -> str:
        fields = ", ".join(f"{n}{'' if r else '?'}: {t}" for n, t, r in self.params)
        return f"- {self.uses}({fields}): {self.description}"


def _stem(word: str) -> str:
    for suffix in ("ing", "es", "s", "ed"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def words(text: str) -> set[str]:
    found = set()
    for w in _WORD.findall(text.lower().replace("_", " ")):
        if w not in _STOP:
            found |= {w, _stem(w)}
    # camelCase action names: postMessage → post, message
    for w in re.findall(r"[A-Z]?[a-z]+", text):
        found.add(_stem(w.lower()))
    return found


def _type(schema: dict[str, Any]) -> str:
    if "anyOf" in schema:
        return "|".join(_type(s) for s in schema["anyOf"] if s.get("type") != "null")
    if "enum" in schema:
        return "|".join(str(v) for v in schema["enum"][:6])
    if schema.get("type") == "array":
        return f"list[{_type(schema.get('items') or {})}]"
    return str(schema.get("type") or ("object" if "$ref" in schema else "any"))


def card(action: sdk.Action, connector: sdk.Connector) -> Card:
    schema = action.params_schema()
    required = set(schema.get("required") or ())
    params = tuple(
        (name, _type(prop), name in required)
        for name, prop in (schema.get("properties") or {}).items()
    )
    summary = " ".join(action.description.split("\n\n")[0].split())
    text = f"{action.uses} {action.name} {connector.name} {summary} {connector.description}"
    return Card(action.uses, summary, params, frozenset(words(text)))


@functools.cache
def _cards(registry: registry_mod.Registry) -> tuple[Card, ...]:
    found: list[Card] = []
    for name in registry.names():
        try:
            connector = registry.connector(name)
        except Exception:  # a broken third-party connector must not stop the assistant
            continue
        found += [card(a, connector) for a in connector.actions.values()]
    return tuple(found)


def cards(registry: registry_mod.Registry | None = None) -> tuple[Card, ...]:
    return _cards(registry or registry_mod.default())


def search(
    query: str, registry: registry_mod.Registry | None = None, *, limit: int = 10
) -> list[Card]:
    """The actions that best match ``query``, best first (none that share no word with it)."""
    asked = words(query)
    families = {c for w in asked for c in FAMILIES.get(w, ())}
    scored: list[tuple[float, str, Card]] = []
    for c in cards(registry):
        connector, _, action = c.uses.partition(".")
        score = len(asked & c.words) + (3.0 if connector in asked else 0.0)
        score += 2.0 if connector in families else 0.0
        score += 2.0 if words(action) & asked else 0.0
        if score > 0:
            scored.append((score, c.uses, c))
    scored.sort(key=lambda t: (-t[0], t[1]))
    return [c for _, _, c in scored[:limit]]


def known(uses: str, registry: registry_mod.Registry | None = None) -> bool:
    return any(c.uses == uses for c in cards(registry))


def texts(found: Iterable[Card]) -> str:
    return "\n".join(c.text() for c in found)
