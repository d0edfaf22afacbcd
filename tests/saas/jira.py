"""Jira Cloud's REST API v3 for issues, as its reference documents it.

Sources (developer.atlassian.com/cloud/jira/platform/rest/v3/): api-group-issues (create
issue; get and do transitions), api-group-issue-search (search for issues using JQL enhanced
search, GET /rest/api/3/search/jql), api-group-issue-comments (add comment), and the intro's
"Authentication" (basic auth with an email and API token) and "Status codes".
Health probe: api-group-myself (``GET /rest/api/3/myself``).

- ``Authorization: Basic base64(email:apiToken)``; JSON bodies.
- Rich text (an issue's description, a comment's body) is Atlassian Document Format:
  ``{"type": "doc", "version": 1, "content": [...]}``; a plain string is refused.
- Errors are ``{"errorMessages": [...], "errors": {field: message}}``.
- The search pages with ``nextPageToken`` and ``maxResults``; the last page has no
  ``nextPageToken`` and ``isLast: true``.
"""

from __future__ import annotations

from typing import Any

import httpserver
from saas import contract

EMAIL = "ops@example.com"
API_TOKEN = "ATATT3xFfGF0T4nUeAcLGC0kHBlYcPWJw"
TRANSITIONS = [
    {"id": "11", "name": "To Do", "to": {"id": "10000", "name": "To Do"}},
    {"id": "21", "name": "In Progress", "to": {"id": "3", "name": "In Progress"}},
    {"id": "31", "name": "Done", "to": {"id": "10001", "name": "Done"}},
]


class Jira(contract.Service):
    def __init__(self, server: httpserver.Server, project: str = "OPS") -> None:
        super().__init__(server)
        self.project = project
        self.issues: list[dict[str, Any]] = []
        self.comments: list[dict[str, Any]] = []
        self.on("POST", "/rest/api/3/issue", self.create_issue)
        self.on("GET", "/rest/api/3/search/jql", self.search)
        self.on("GET", "/rest/api/3/myself", self.myself)

    def seed(self, count: int) -> None:
        for n in range(count):
            self._add({"summary": f"Issue {n + 1}", "issuetype": {"name": "Task"}})

    def myself(self, request: httpserver.Recorded) -> httpserver.Reply:
        """api-group-myself: the user the credentials belong to."""
        return httpserver.Reply.with_json(
            {
                "self": "https://acme.atlassian.net/rest/api/3/user?accountId=5b10a2844c20165700ede21g",
                "accountId": "5b10a2844c20165700ede21g",
                "accountType": "atlassian",
                "emailAddress": EMAIL,
                "displayName": "Mia Krystof",
                "active": True,
                "timeZone": "Australia/Sydney",
                "locale": "en_US",
            }
        )

    def authenticate(self, request: httpserver.Recorded) -> None:
        if contract.basic(request) != (EMAIL, API_TOKEN):
            raise contract.Violation(401, "Client must be authenticated to access this resource.")

    def error(self, status: int, message: str) -> httpserver.Reply:
        return httpserver.Reply.with_json({"errorMessages": [message], "errors": {}}, status)

    def create_issue(self, request: httpserver.Recorded) -> httpserver.Reply:
        data = contract.json_body(request, required={"fields"}, allowed={"fields", "update"})
        fields = data["fields"]
        problems = {}
        if fields.get("project", {}).get("key") != self.project:
            problems["project"] = "Specify a valid project ID or key"
        if not fields.get("summary"):
            problems["summary"] = "You must specify a summary of the issue."
        if not fields.get("issuetype", {}).get("name"):
            problems["issuetype"] = "Specify an issue type"
        if "description" in fields and not _is_adf(fields["description"]):
            problems["description"] = (
                "Operation value must be an Atlassian Document (see the Atlassian Document Format)"
            )
        if problems:
            self.violations.append(f"create_issue: {problems}")
            return httpserver.Reply.with_json({"errorMessages": [], "errors": problems}, 400)
        issue = self._add(fields)
        return httpserver.Reply.with_json(
            {"id": issue["id"], "key": issue["key"], "self": issue["self"]}, 201
        )

    def search(self, request: httpserver.Recorded) -> httpserver.Reply:
        jql = contract.query(request, "jql")
        if not jql:
            raise contract.Violation(400, "The JQL query is required.")
        size = int(contract.query(request, "maxResults") or 50)
        start = int(contract.query(request, "nextPageToken") or "0")
        wanted = (contract.query(request, "fields") or "id").split(",")
        found = [_shown(issue, wanted) for issue in self.issues]
        page: dict[str, Any] = {"issues": contract.page_of(found, start, size)}
        if start + size < len(found):
            page["nextPageToken"] = str(start + size)
            page["isLast"] = False
        else:
            page["isLast"] = True
        return httpserver.Reply.with_json(page)

    def add_comment(self, request: httpserver.Recorded, key: str) -> httpserver.Reply:
        data = contract.json_body(request, required={"body"}, allowed={"body", "visibility"})
        if not _is_adf(data["body"]):
            raise contract.Violation(400, "Comment body is not valid!")
        comment = {
            "id": str(10000 + len(self.comments)),
            "self": f"{self.server.base_url}/rest/api/3/issue/{key}/comment/10000",
            "body": data["body"],
            "author": {"accountId": "5b10a2844c20165700ede21g", "displayName": "Ops Bot"},
            "created": "2025-01-01T12:00:00.000+0000",
        }
        self.comments.append(comment)
        return httpserver.Reply.with_json(comment, 201)

    def transitions(self, request: httpserver.Recorded, key: str) -> httpserver.Reply:
        return httpserver.Reply.with_json({"expand": "transitions", "transitions": TRANSITIONS})

    def transition(self, request: httpserver.Recorded, key: str) -> httpserver.Reply:
        data = contract.json_body(
            request,
            required={"transition"},
            allowed={"transition", "fields", "update", "historyMetadata", "properties"},
        )
        wanted = data["transition"].get("id")
        target = next((t for t in TRANSITIONS if t["id"] == wanted), None)
        if target is None:
            return httpserver.Reply.with_json(
                {
                    "errorMessages": [f"Transition id '{wanted}' is not valid for this issue."],
                    "errors": {},
                },
                400,
            )
        issue = next(i for i in self.issues if i["key"] == key)
        issue["fields"]["status"] = target["to"]
        return httpserver.Reply(204)

    def _add(self, fields: dict[str, Any]) -> dict[str, Any]:
        number = len(self.issues) + 1
        key = f"{self.project}-{number}"
        issue = {
            "id": str(10000 + number),
            "key": key,
            "self": f"{self.server.base_url}/rest/api/3/issue/{10000 + number}",
            "fields": {**fields, "status": {"id": "10000", "name": "To Do"}},
        }
        self.issues.append(issue)
        base = f"/rest/api/3/issue/{key}"
        self.on("POST", f"{base}/comment", lambda r: self.add_comment(r, key))
        self.on("GET", f"{base}/transitions", lambda r: self.transitions(r, key))
        self.on("POST", f"{base}/transitions", lambda r: self.transition(r, key))
        return issue


def _is_adf(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and value.get("type") == "doc"
        and value.get("version") == 1
        and isinstance(value.get("content"), list)
    )


def _shown(issue: dict[str, Any], wanted: list[str]) -> dict[str, Any]:
    everything = "*all" in wanted or "*navigable" in wanted
    fields = {k: v for k, v in issue["fields"].items() if everything or k in wanted}
    return {"id": issue["id"], "key": issue["key"], "self": issue["self"], "fields": fields}
