"""Stripe's API for customers, payment intents, refunds and charges, as its reference documents it.

Sources (docs.stripe.com/api): authentication (HTTP Basic, the secret key as the user name
and no password), customers/create, payment_intents/create, refunds/create, charges/list,
pagination (``limit`` 1-100, ``starting_after`` = the last object's id, ``has_more``),
idempotent_requests (``Idempotency-Key``: a retry with the same key and parameters gets the
first response again, with ``Idempotent-Replayed: true``; other parameters are an
``idempotency_error``), and errors (``{"error": {"type", "code", "message", "param"}}``,
``Stripe-Should-Retry``).
Health probe: balance/balance_retrieve (``GET /v1/balance``).

- Request bodies are ``application/x-www-form-urlencoded``, nested as ``metadata[key]=value``
  and ``payment_method_types[0]=card``; responses are JSON.
"""

from __future__ import annotations

import json
from typing import Any

import httpserver
from saas import contract

SECRET_KEY = "sk_test_4eC39HqLyjWDarjtT1zdp7dc"


class Stripe(contract.Service):
    def __init__(self, server: httpserver.Server) -> None:
        super().__init__(server)
        self.objects: dict[str, list[dict[str, Any]]] = {
            "customer": [],
            "payment_intent": [],
            "refund": [],
        }
        self.charges: list[dict[str, Any]] = []
        self.replies: dict[str, tuple[str, httpserver.Reply]] = {}
        self.on("POST", "/v1/customers", lambda r: self.idempotent(r, self.create_customer))
        self.on("POST", "/v1/payment_intents", lambda r: self.idempotent(r, self.create_intent))
        self.on("POST", "/v1/refunds", lambda r: self.idempotent(r, self.create_refund))
        self.on("GET", "/v1/charges", self.list_charges)
        self.on("GET", "/v1/balance", self.balance)

    def seed_charges(self, count: int, customer: str = "cus_NffrFeUfNV2Hib") -> None:
        for n in range(count):
            self.charges.append(
                {
                    "id": f"ch_3MmlLrLkdIwHu7ix0snN{n:04d}",
                    "object": "charge",
                    "amount": 1000 + n,
                    "currency": "eur",
                    "customer": customer,
                    "created": 1_700_000_000 - n,
                    "paid": True,
                    "refunded": False,
                }
            )

    def balance(self, request: httpserver.Recorded) -> httpserver.Reply:
        """balance/balance_retrieve: the account's balance object."""
        money = [{"amount": 666670, "currency": "eur", "source_types": {"card": 666670}}]
        return httpserver.Reply.with_json(
            {"object": "balance", "available": money, "pending": money, "livemode": False}
        )

    def authenticate(self, request: httpserver.Recorded) -> None:
        user, password = contract.basic(request)
        if user != SECRET_KEY or password:
            raise contract.Violation(401, f"Invalid API Key provided: {user[:8]}****{user[-4:]}")

    def error(self, status: int, message: str) -> httpserver.Reply:
        return httpserver.Reply.with_json(
            {"error": {"message": message, "type": "invalid_request_error"}}, status
        )

    def idempotent(self, request: httpserver.Recorded, create: Any) -> httpserver.Reply:
        key = request.headers.get("idempotency-key")
        if key and key in self.replies:
            first_body, first = self.replies[key]
            if first_body != request.text:
                return httpserver.Reply.with_json(
                    {
                        "error": {
                            "type": "idempotency_error",
                            "message": "Keys for idempotent requests can only be used with "
                            "the same parameters they were first used with. Try using a key "
                            f"other than '{key}' if you meant to execute a different request.",
                        }
                    },
                    400,
                )
            return httpserver.Reply(
                first.status, first.body, {**first.headers, "Idempotent-Replayed": "true"}
            )
        reply: httpserver.Reply = create(contract.form_body(request))
        if key and reply.status < 500:
            self.replies[key] = (request.text, reply)
        return reply

    def create_customer(self, form: dict[str, Any]) -> httpserver.Reply:
        contract.fields(
            form, allowed={"email", "name", "phone", "description", "metadata", "address"}
        )
        return self._created(
            "customer", "cus_", {"email": None, "name": None, "metadata": {}, **form}
        )

    def create_intent(self, form: dict[str, Any]) -> httpserver.Reply:
        contract.fields(
            form,
            required={"amount", "currency"},
            allowed={
                "amount",
                "currency",
                "customer",
                "description",
                "receipt_email",
                "automatic_payment_methods",
                "payment_method_types",
                "metadata",
            },
        )
        if not form["amount"].isdigit():
            raise contract.Violation(400, "Invalid integer: " + form["amount"])
        if "payment_method_types" in form and not isinstance(form["payment_method_types"], list):
            raise contract.Violation(400, "Invalid array")
        intent = {
            **form,
            "amount": int(form["amount"]),
            "status": "requires_payment_method",
            "client_secret": "pi_3MtwBwLkdIwHu7ix28a3tqPa_secret_YrKJUKribcBjcG8HVhfZluoGH",
        }
        return self._created("payment_intent", "pi_", intent)

    def create_refund(self, form: dict[str, Any]) -> httpserver.Reply:
        contract.fields(form, allowed={"payment_intent", "charge", "amount", "reason", "metadata"})
        target = form.get("payment_intent") or form.get("charge")
        if not target:
            raise contract.Violation(400, "One of `charge` or `payment_intent` is required.")
        if any(r.get("payment_intent", r.get("charge")) == target for r in self.objects["refund"]):
            return httpserver.Reply.with_json(
                {
                    "error": {
                        "type": "invalid_request_error",
                        "code": "charge_already_refunded",
                        "message": f"Charge for {target} has already been refunded.",
                    }
                },
                400,
                {"Stripe-Should-Retry": "false"},
            )
        refund = {**form, "status": "succeeded"}
        if "amount" in form:
            refund["amount"] = int(form["amount"])
        return self._created("refund", "re_", refund)

    def list_charges(self, request: httpserver.Recorded) -> httpserver.Reply:
        limit = int(contract.query(request, "limit") or 10)
        if not 1 <= limit <= 100:
            raise contract.Violation(400, "limit must be between 1 and 100")
        after = contract.query(request, "starting_after")
        customer = contract.query(request, "customer")
        since = contract.query(request, "created[gte]")
        found = [
            c
            for c in self.charges
            if (customer is None or c["customer"] == customer)
            and (since is None or c["created"] >= int(since))
        ]
        start = 0
        if after is not None:
            start = next(i for i, c in enumerate(found) if c["id"] == after) + 1
        page = contract.page_of(found, start, limit)
        return httpserver.Reply.with_json(
            {
                "object": "list",
                "url": "/v1/charges",
                "has_more": start + limit < len(found),
                "data": page,
            }
        )

    def _created(self, kind: str, prefix: str, fields: dict[str, Any]) -> httpserver.Reply:
        found = self.objects[kind]
        obj = {
            "id": f"{prefix}NffrFeUfNV2H{len(found):02d}",
            "object": kind,
            "livemode": False,
            **fields,
        }
        found.append(obj)
        return httpserver.Reply(
            200, json.dumps(obj), {"Content-Type": "application/json", "Request-Id": "req_1"}
        )
