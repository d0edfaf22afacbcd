"""Dropbox's API v2 for files, as its HTTP documentation describes it.

Sources: dropbox.com/developers/documentation/http/documentation (files/list_folder,
files/list_folder/continue, files/create_folder_v2, files/get_temporary_link; "Errors":
400 for a malformed request as plain text, 401 and 409 with ``error_summary`` and a tagged
``error``; 429 with ``Retry-After``).
Health probe: users/get_current_account (an RPC call without parameters: no body).

- RPC style: every call is a POST with a JSON body (``Content-Type: application/json``);
  an unknown field in the body is a 400.
- ``Authorization: Bearer <access token>``.
- ``list_folder`` answers ``entries``, ``cursor``, ``has_more``; more entries come from
  ``list_folder/continue`` with ``{"cursor": ...}`` only.
- Paths start with ``/``; the root is ``""``.
"""

from __future__ import annotations

from typing import Any

import httpserver
from saas import contract

ACCESS_TOKEN = "sl.B0Xe5gTq9aYcM3nR7vK2pL8wZ4dF6hJ1sU0oI3eA5bC7xN9m"


class Dropbox(contract.Service):
    def __init__(self, server: httpserver.Server) -> None:
        super().__init__(server)
        self.entries: dict[str, dict[str, Any]] = {}
        self.page_size = 2
        self.on("POST", "/2/files/list_folder", self.list_folder)
        self.on("POST", "/2/files/list_folder/continue", self.list_continue)
        self.on("POST", "/2/files/create_folder_v2", self.create_folder)
        self.on("POST", "/2/files/get_temporary_link", self.temporary_link)
        self.on("POST", "/2/users/get_current_account", self.current_account)

    def add_file(self, path: str) -> None:
        name = path.rsplit("/", 1)[1]
        self.entries[path.lower()] = {
            ".tag": "file",
            "name": name,
            "path_lower": path.lower(),
            "path_display": path,
            "id": f"id:a4ayc_80_OEAAAAAAAAA{len(self.entries):03d}",
            "size": 7212,
            "rev": "a1c10ce0dd78",
            "server_modified": "2025-01-01T12:00:00Z",
        }

    def current_account(self, request: httpserver.Recorded) -> httpserver.Reply:
        """users/get_current_account: no parameters, so no body (or ``null`` as JSON)."""
        media = request.headers.get("content-type", "").partition(";")[0].strip()
        if request.body and not (media == "application/json" and request.text.strip() == "null"):
            raise contract.Violation(400, "users/get_current_account takes no parameters")
        return httpserver.Reply.with_json(
            {
                "account_id": "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc",
                "name": {
                    "given_name": "Franz",
                    "surname": "Ferdinand",
                    "familiar_name": "Franz",
                    "display_name": "Franz Ferdinand (Personal)",
                    "abbreviated_name": "FF",
                },
                "email": "franz@example.com",
                "email_verified": True,
                "disabled": False,
                "country": "US",
                "locale": "en",
                "is_paired": False,
                "account_type": {".tag": "basic"},
            }
        )

    def authenticate(self, request: httpserver.Recorded) -> None:
        contract.bearer(request, ACCESS_TOKEN)

    def error(self, status: int, message: str) -> httpserver.Reply:
        if status == 401:
            return httpserver.Reply.with_json(
                {
                    "error_summary": "invalid_access_token/",
                    "error": {".tag": "invalid_access_token"},
                },
                401,
            )
        return httpserver.Reply(400, f"Error in call to API function: request body: {message}")

    def path_error(self, function: str, tag: str) -> httpserver.Reply:
        return httpserver.Reply.with_json(
            {"error_summary": f"path/{tag}/..", "error": {".tag": "path", "path": {".tag": tag}}},
            409,
        )

    def list_folder(self, request: httpserver.Recorded) -> httpserver.Reply:
        data = self._body(
            request, required={"path"}, allowed={"path", "recursive", "include_deleted", "limit"}
        )
        folder = data["path"].lower().rstrip("/")
        if folder and not any(p.startswith(folder + "/") for p in self.entries):
            return self.path_error("list_folder", "not_found")
        inside = [
            e
            for p, e in sorted(self.entries.items())
            if p.startswith(folder + "/")
            and (data.get("recursive") or "/" not in p[len(folder) + 1 :])
        ]
        return self._page(inside, 0)

    def list_continue(self, request: httpserver.Recorded) -> httpserver.Reply:
        data = self._body(request, required={"cursor"}, allowed={"cursor"})
        folder, _, start = data["cursor"].rpartition("@")
        inside = [e for p, e in sorted(self.entries.items()) if p.startswith(folder + "/")]
        return self._page(inside, int(start))

    def create_folder(self, request: httpserver.Recorded) -> httpserver.Reply:
        data = self._body(request, required={"path"}, allowed={"path", "autorename"})
        path = data["path"]
        if not path.startswith("/"):
            raise contract.Violation(
                400, f"path: '{path}' did not match pattern '(/(.|[\\r\\n])*)|(ns:[0-9]+(/.*)?)'"
            )
        if path.lower() in self.entries and not data.get("autorename"):
            return self.path_error("create_folder_v2", "conflict")
        metadata = {
            "name": path.rsplit("/", 1)[1],
            "path_lower": path.lower(),
            "path_display": path,
            "id": "id:folder1",
        }
        self.entries[path.lower()] = {".tag": "folder", **metadata}
        return httpserver.Reply.with_json({"metadata": metadata})

    def temporary_link(self, request: httpserver.Recorded) -> httpserver.Reply:
        data = self._body(request, required={"path"}, allowed={"path"})
        entry = self.entries.get(data["path"].lower())
        if entry is None or entry[".tag"] != "file":
            return self.path_error("get_temporary_link", "not_found")
        return httpserver.Reply.with_json(
            {
                "metadata": entry,
                "link": "https://ucdd3a5c.dl.dropboxusercontent.com/cd/0/get/Abc123/file",
            }
        )

    def _body(
        self, request: httpserver.Recorded, *, required: set[str], allowed: set[str]
    ) -> dict[str, Any]:
        data: dict[str, Any] = contract.json_body(request, required=required, allowed=allowed)
        return data

    def _page(self, inside: list[dict[str, Any]], start: int) -> httpserver.Reply:
        folder = inside[0]["path_lower"].rsplit("/", 1)[0] if inside else ""
        end = start + self.page_size
        return httpserver.Reply.with_json(
            {
                "entries": inside[start:end],
                "cursor": f"{folder}@{end}",
                "has_more": end < len(inside),
            }
        )
