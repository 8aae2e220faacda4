"""A Confluent Schema Registry stand-in for the tests: the REST contract the codec relies on.

No Confluent-compatible registry can be installed on these machines (Karapace is not on PyPI,
Apicurio's registry is a Quarkus application, not a runnable jar on Maven Central), so the tests
run the client against this implementation of the part of the API v1 that Tether uses:
``PUT /config/{subject}``, ``POST /subjects/{subject}/versions``, ``GET /schemas/ids/{id}``,
``GET /subjects`` and ``GET /subjects/{subject}/versions``, with Confluent's error bodies
(``{"error_code": 40403, "message": ...}``), schema ids global and stable for identical schemas,
and optional HTTP basic auth. It records each subject's compatibility level; it does not judge
compatibility itself (a real registry does): ``refuse`` makes a subject answer 409 as a real
registry does for an incompatible schema.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class FakeSchemaRegistry:
    def __init__(self, username: str = "", password: str = "") -> None:
        self.credentials = (username, password) if username else None
        self.schemas: dict[int, str] = {}
        self.subjects: dict[str, list[int]] = {}
        self.compatibility: dict[str, str] = {}
        self.refuse: set[str] = set()
        self.requests: list[tuple[str, str]] = []
        self.app = Starlette(
            routes=[
                Route("/config/{subject}", self.put_config, methods=["PUT"]),
                Route("/subjects", self.list_subjects, methods=["GET"]),
                Route("/subjects/{subject}/versions", self.register, methods=["POST"]),
                Route("/subjects/{subject}/versions", self.versions, methods=["GET"]),
                Route("/schemas/ids/{schema_id:int}", self.schema_by_id, methods=["GET"]),
            ]
        )

    @staticmethod
    def _error(status: int, code: int, message: str) -> JSONResponse:
        return JSONResponse(
            {"error_code": code, "message": message}, status_code=status, media_type=CONTENT_TYPE
        )

    def _denied(self, request: Request) -> JSONResponse | None:
        self.requests.append((request.method, request.url.path))
        if self.credentials is None:
            return None
        expected = base64.b64encode(":".join(self.credentials).encode()).decode()
        if request.headers.get("authorization") != f"Basic {expected}":
            return self._error(401, 40101, "Unauthorized")
        return None

    async def put_config(self, request: Request) -> JSONResponse:
        if denied := self._denied(request):
            return denied
        body: dict[str, Any] = await request.json()
        level = str(body.get("compatibility", ""))
        self.compatibility[request.path_params["subject"]] = level
        return JSONResponse({"compatibility": level}, media_type=CONTENT_TYPE)

    async def list_subjects(self, request: Request) -> JSONResponse:
        if denied := self._denied(request):
            return denied
        return JSONResponse(sorted(self.subjects), media_type=CONTENT_TYPE)

    async def versions(self, request: Request) -> JSONResponse:
        if denied := self._denied(request):
            return denied
        ids = self.subjects.get(request.path_params["subject"])
        if ids is None:
            return self._error(404, 40401, "Subject not found")
        return JSONResponse(list(range(1, len(ids) + 1)), media_type=CONTENT_TYPE)

    async def register(self, request: Request) -> JSONResponse:
        if denied := self._denied(request):
            return denied
        subject = request.path_params["subject"]
        try:
            text = (await request.json())["schema"]
            normalized = json.dumps(json.loads(text), sort_keys=True)
        except (ValueError, KeyError, TypeError):
            return self._error(422, 42201, "Invalid schema")
        if subject in self.refuse:
            return self._error(409, 409, "Schema being registered is incompatible")
        known = [i for i, existing in self.schemas.items() if existing == normalized]
        schema_id = known[0] if known else len(self.schemas) + 1
        self.schemas[schema_id] = normalized
        versions = self.subjects.setdefault(subject, [])
        if schema_id not in versions:
            versions.append(schema_id)
        return JSONResponse({"id": schema_id}, media_type=CONTENT_TYPE)

    async def schema_by_id(self, request: Request) -> JSONResponse:
        if denied := self._denied(request):
            return denied
        schema = self.schemas.get(request.path_params["schema_id"])
        if schema is None:
            return self._error(404, 40403, "Schema not found")
        return JSONResponse({"schema": schema}, media_type=CONTENT_TYPE)
