"""Asana's REST API for tasks, as its reference documents it.

Sources (developers.asana.com/reference/): createtask, updatetask, gettasksforproject,
createstoryfortask, and the guides "Pagination" (``limit`` 1-100 and ``offset``; the
response's ``next_page`` is null on the last page) and "Errors".
Health probe: getuser (``GET /users/me``).

- ``Authorization: Bearer <personal access token>``.
- Request and response bodies are wrapped: ``{"data": {...}}``.
- A task needs one of ``workspace``, ``projects`` or ``parent``.
- Errors are ``{"errors": [{"message": ..., "help": ...}]}``.
"""

from __future__ import annotations

from typing import Any

import httpserver
from saas import contract

TOKEN = "2/1204567890123456/1209876543210987:5f2a9c1e3b4d6f8a"
WORKSPACE = "1100000000000001"
PROJECT = "1200000000000002"
_TASK_FIELDS = {
    "name",
    "notes",
    "html_notes",
    "workspace",
    "projects",
    "parent",
    "assignee",
    "due_on",
    "due_at",
    "completed",
    "followers",
    "tags",
}


class Asana(contract.Service):
    def __init__(self, server: httpserver.Server) -> None:
        super().__init__(server)
        self.tasks: list[dict[str, Any]] = []
        self.stories: list[dict[str, Any]] = []
        self.on("POST", "/api/1.0/tasks", self.create_task)
        self.on("GET", f"/api/1.0/projects/{PROJECT}/tasks", self.project_tasks)
        self.on("GET", "/api/1.0/users/me", self.me)

    def seed(self, count: int) -> None:
        for n in range(count):
            self._add({"name": f"Task {n + 1}", "projects": [PROJECT]})

    def me(self, request: httpserver.Recorded) -> httpserver.Reply:
        """getuser with ``me``: the token's user, wrapped in ``data``."""
        return httpserver.Reply.with_json(
            {
                "data": {
                    "gid": "12345",
                    "resource_type": "user",
                    "name": "Greg Sanchez",
                    "email": "gsanchez@example.com",
                    "workspaces": [{"gid": WORKSPACE, "resource_type": "workspace"}],
                }
            }
        )

    def authenticate(self, request: httpserver.Recorded) -> None:
        contract.bearer(request, TOKEN)

    def error(self, status: int, message: str) -> httpserver.Reply:
        return httpserver.Reply.with_json(
            {"errors": [{"message": message, "help": "https://developers.asana.com/docs/errors"}]},
            status,
        )

    def create_task(self, request: httpserver.Recorded) -> httpserver.Reply:
        data = self._data(request)
        contract.fields(data, allowed=_TASK_FIELDS, where="data")
        if not ({"workspace", "projects", "parent"} & set(data)):
            raise contract.Violation(400, "You should specify one of workspace, parent, projects")
        if "projects" in data and not isinstance(data["projects"], list):
            raise contract.Violation(400, "projects: Value is not an array")
        return httpserver.Reply.with_json({"data": self._add(data)}, 201)

    def update_task(self, request: httpserver.Recorded, task: dict[str, Any]) -> httpserver.Reply:
        data = self._data(request)
        contract.fields(
            data, allowed=_TASK_FIELDS - {"projects", "workspace", "parent"}, where="data"
        )
        if "completed" in data:
            contract.of_type(data["completed"], bool, "completed")
        task.update(data)
        return httpserver.Reply.with_json({"data": task})

    def project_tasks(self, request: httpserver.Recorded) -> httpserver.Reply:
        limit = int(contract.query(request, "limit") or 0)
        if not 1 <= limit <= 100:
            raise contract.Violation(400, "limit: Must be between 1 and 100")
        start = int(contract.query(request, "offset") or "0")
        fields = (contract.query(request, "opt_fields") or "name").split(",")
        page = [
            {
                "gid": t["gid"],
                "resource_type": "task",
                **{f: t.get(f) for f in fields if "." not in f},
            }
            for t in contract.page_of(self.tasks, start, limit)
        ]
        following = None
        if start + limit < len(self.tasks):
            token = str(start + limit)
            following = {
                "offset": token,
                "path": f"/projects/{PROJECT}/tasks?limit={limit}&offset={token}",
                "uri": f"https://app.asana.com/api/1.0/projects/{PROJECT}/tasks?offset={token}",
            }
        return httpserver.Reply.with_json({"data": page, "next_page": following})

    def add_story(self, request: httpserver.Recorded, task: dict[str, Any]) -> httpserver.Reply:
        data = self._data(request)
        contract.fields(
            data, required={"text"}, allowed={"text", "html_text", "is_pinned"}, where="data"
        )
        story = {
            "gid": f"13000000000000{len(self.stories):02d}",
            "resource_type": "story",
            "resource_subtype": "comment_added",
            "type": "comment",
            "text": data["text"],
            "target": {"gid": task["gid"], "resource_type": "task", "name": task["name"]},
            "created_at": "2025-01-01T12:00:00.000Z",
        }
        self.stories.append(story)
        return httpserver.Reply.with_json({"data": story}, 201)

    def _data(self, request: httpserver.Recorded) -> dict[str, Any]:
        body = contract.json_body(request, required={"data"}, allowed={"data"})
        if not isinstance(body["data"], dict):
            raise contract.Violation(400, "data: Value is not an object")
        data: dict[str, Any] = body["data"]
        return data

    def _add(self, data: dict[str, Any]) -> dict[str, Any]:
        gid = f"12100000000000{len(self.tasks):02d}"
        task = {
            "gid": gid,
            "resource_type": "task",
            "name": data.get("name", ""),
            "notes": data.get("notes", ""),
            "completed": False,
            "assignee": {"gid": "1", "resource_type": "user"} if data.get("assignee") else None,
            "due_on": data.get("due_on"),
            "projects": [{"gid": p, "resource_type": "project"} for p in data.get("projects", [])],
            "workspace": {"gid": data.get("workspace", WORKSPACE), "resource_type": "workspace"},
            "permalink_url": f"https://app.asana.com/0/{PROJECT}/{gid}",
        }
        self.tasks.append(task)
        self.on("PUT", f"/api/1.0/tasks/{gid}", lambda r: self.update_task(r, task))
        self.on("POST", f"/api/1.0/tasks/{gid}/stories", lambda r: self.add_story(r, task))
        return task
