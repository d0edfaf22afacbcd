"""GitHub's REST API for issues and comments, as its reference documents it.

Sources: https://docs.github.com/en/rest/issues/issues (create, update, list repository
issues), https://docs.github.com/en/rest/issues/comments (create an issue comment),
https://docs.github.com/en/rest/using-the-rest-api/using-pagination-in-the-rest-api (Link
header), https://docs.github.com/en/rest/using-the-rest-api/rate-limits-for-the-rest-api and
https://docs.github.com/en/rest/using-the-rest-api/troubleshooting-the-rest-api (errors).
Health probe: https://docs.github.com/en/rest/rate-limit/rate-limit (``GET /rate_limit``).

- ``Authorization: Bearer <token>``; a ``User-Agent`` is required; ``X-GitHub-Api-Version``
  must name a supported version (400 otherwise); JSON bodies.
- Errors are ``{"message", "documentation_url"}``; a body that breaks the schema is 422
  ``Validation Failed`` with an ``errors`` list; a used-up quota is 403 (or 429) with
  ``x-ratelimit-remaining: 0`` and ``x-ratelimit-reset`` (Unix seconds).
- Lists take ``per_page`` (at most 100) and ``page``, and answer a ``Link`` header with
  ``rel="next"`` and ``rel="last"`` while there are more pages.
"""

from __future__ import annotations

import math
import urllib.parse
from typing import Any

import httpserver
from saas import contract

TOKEN = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"
DOCS = "https://docs.github.com/rest"
API_VERSIONS = {"2022-11-28"}
_ISSUE_FIELDS = {"title", "body", "assignee", "milestone", "labels", "assignees", "type"}
_UPDATE_FIELDS = _ISSUE_FIELDS | {"state", "state_reason"}


class GitHub(contract.Service):
    def __init__(
        self, server: httpserver.Server, owner: str = "octo-org", repo: str = "hello-world"
    ) -> None:
        super().__init__(server)
        self.owner, self.repo = owner, repo
        self.issues: list[dict[str, Any]] = []
        self.comments: list[dict[str, Any]] = []
        self.collaborators = {"octocat", "hubot"}
        base = f"/repos/{owner}/{repo}/issues"
        self.on("POST", base, self.create_issue)
        self.on("GET", base, self.list_issues)
        self.on("GET", "/rate_limit", self.rate_limit)

    def seed(self, count: int) -> None:
        for _ in range(count):
            self._new_issue({"title": f"Issue {len(self.issues) + 1}"})

    def route_issue(self, number: int) -> None:
        path = f"/repos/{self.owner}/{self.repo}/issues/{number}"
        self.on("PATCH", path, lambda r: self.update_issue(r, number))
        self.on("POST", f"{path}/comments", lambda r: self.add_comment(r, number))

    def rate_limit(self, request: httpserver.Recorded) -> httpserver.Reply:
        """rate-limit#get-rate-limit-status-for-the-authenticated-user: not counted itself."""
        core = {"limit": 5000, "used": 1, "remaining": 4999, "reset": 1691591363}
        return httpserver.Reply.with_json(
            {"resources": {"core": core, "search": dict(core, limit=30)}, "rate": core}
        )

    def authenticate(self, request: httpserver.Recorded) -> None:
        if not request.headers.get("user-agent"):
            raise contract.Violation(403, "Request forbidden by administrative rules.")
        version = request.headers.get("x-github-api-version")
        if version is not None and version not in API_VERSIONS:
            raise contract.Violation(400, f"API version {version} is not supported.")
        contract.bearer(request, TOKEN)
        if request.headers.get("accept") != "application/vnd.github+json":
            raise contract.Violation(415, "Accept should be application/vnd.github+json")

    def error(self, status: int, message: str) -> httpserver.Reply:
        if status == 401:
            message = "Bad credentials"
        return httpserver.Reply.with_json(
            {"message": message, "documentation_url": DOCS, "status": str(status)}, status
        )

    def rate_limit_reply(self, reset: int) -> httpserver.Reply:
        return httpserver.Reply.with_json(
            {"message": "API rate limit exceeded for user ID 1.", "documentation_url": DOCS},
            403,
            {
                "x-ratelimit-limit": "5000",
                "x-ratelimit-remaining": "0",
                "x-ratelimit-used": "5000",
                "x-ratelimit-reset": str(reset),
                "x-ratelimit-resource": "core",
            },
        )

    def create_issue(self, request: httpserver.Recorded) -> httpserver.Reply:
        data = contract.json_body(request, allowed=_ISSUE_FIELDS)
        if not isinstance(data.get("title"), str | int):
            return self._invalid("missing_field", "title")
        for name in ("labels", "assignees"):
            if name in data and not isinstance(data[name], list):
                return self._invalid("invalid", name)
        for login in data.get("assignees", []):
            if login not in self.collaborators:
                return self._invalid("invalid", "assignees", login)
        if "milestone" in data:
            contract.of_type(data["milestone"], (int, str), "milestone")
        return httpserver.Reply.with_json(self._new_issue(data), 201)

    def update_issue(self, request: httpserver.Recorded, number: int) -> httpserver.Reply:
        data = contract.json_body(request, allowed=_UPDATE_FIELDS)
        issue = self.issues[number - 1]
        if data.get("state", "open") not in ("open", "closed"):
            return self._invalid("invalid", "state")
        if data.get("state_reason", "completed") not in ("completed", "not_planned", "reopened"):
            return self._invalid("invalid", "state_reason")
        if "labels" in data:
            issue["labels"] = [_label(name) for name in data.pop("labels")]
        issue.update(data)
        return httpserver.Reply.with_json(issue)

    def list_issues(self, request: httpserver.Recorded) -> httpserver.Reply:
        per_page = int(contract.query(request, "per_page") or 30)
        page = int(contract.query(request, "page") or 1)
        if per_page > 100:
            per_page = 100  # documented: "max 100"
        state = contract.query(request, "state") or "open"
        if state not in ("open", "closed", "all"):
            raise contract.Violation(422, "Validation Failed")
        found = [i for i in self.issues if state == "all" or i["state"] == state]
        found.reverse()  # newest first
        last = max(1, math.ceil(len(found) / per_page))
        links = []
        path = f"/repos/{self.owner}/{self.repo}/issues"
        kept = {k: v[0] for k, v in request.query.items() if k != "page"}
        if page < last:
            links.append(f'<{self._url(path, kept, page + 1)}>; rel="next"')
            links.append(f'<{self._url(path, kept, last)}>; rel="last"')
        headers = {"Link": ", ".join(links)} if links else {}
        items = contract.page_of(found, (page - 1) * per_page, per_page)
        return httpserver.Reply.with_json(items, headers=headers)

    def add_comment(self, request: httpserver.Recorded, number: int) -> httpserver.Reply:
        data = contract.json_body(request, required={"body"}, allowed={"body"})
        comment = {
            "id": 1000 + len(self.comments),
            "node_id": "MDEyOklzc3VlQ29tbWVudDE=",
            "url": f"https://api.github.com/repos/{self.owner}/{self.repo}/issues/comments/1",
            "html_url": f"https://github.com/{self.owner}/{self.repo}/issues/{number}#issuecomment-1",
            "body": data["body"],
            "user": {"login": "octocat", "id": 1},
            "issue_url": f"https://api.github.com/repos/{self.owner}/{self.repo}/issues/{number}",
            "author_association": "COLLABORATOR",
            "created_at": "2025-01-01T12:00:00Z",
            "updated_at": "2025-01-01T12:00:00Z",
        }
        self.comments.append(comment)
        return httpserver.Reply.with_json(comment, 201)

    def _new_issue(self, data: dict[str, Any]) -> dict[str, Any]:
        number = len(self.issues) + 1
        issue = {
            "id": 100 + number,
            "node_id": "MDU6SXNzdWUx",
            "url": f"https://api.github.com/repos/{self.owner}/{self.repo}/issues/{number}",
            "html_url": f"https://github.com/{self.owner}/{self.repo}/issues/{number}",
            "number": number,
            "state": "open",
            "state_reason": None,
            "title": str(data["title"]),
            "body": data.get("body"),
            "user": {"login": "octocat", "id": 1},
            "labels": [_label(name) for name in data.get("labels", [])],
            "assignees": [{"login": login} for login in data.get("assignees", [])],
            "milestone": {"number": data["milestone"]} if "milestone" in data else None,
            "comments": 0,
            "created_at": "2025-01-01T12:00:00Z",
            "updated_at": "2025-01-01T12:00:00Z",
        }
        self.issues.append(issue)
        self.route_issue(number)
        return issue

    def _invalid(self, code: str, field: str, value: str | None = None) -> httpserver.Reply:
        self.violations.append(f"422 {code} {field}")
        error = {"resource": "Issue", "code": code, "field": field}
        if value is not None:
            error["value"] = value
        return httpserver.Reply.with_json(
            {
                "message": "Validation Failed",
                "errors": [error],
                "documentation_url": DOCS,
            },
            422,
        )

    def _url(self, path: str, query: dict[str, str], page: int) -> str:
        pairs = urllib.parse.urlencode({**query, "page": str(page)})
        return f"{self.server.base_url}{path}?{pairs}"


def _label(name: str) -> dict[str, Any]:
    return {"id": abs(hash(name)) % 10_000, "name": name, "color": "f29513", "default": False}
