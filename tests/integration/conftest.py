"""The application running in-process against moto, and a client that speaks its HTTP API."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from moto import mock_aws

from local.apigw import HttpResult, build_query
from local.stack import InProcessStack


class ApiClient:
    """Calls the HTTP API the way a client would: method, path, JSON body, bearer token."""

    def __init__(self, stack: InProcessStack) -> None:
        self.stack = stack

    def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = None,
        query: dict[str, Any] | None = None,
        raw_body: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> HttpResult:
        all_headers = {"content-type": "application/json"} | (headers or {})
        if token:
            all_headers["authorization"] = f"Bearer {token}"
        payload = raw_body if raw_body is not None else (json.dumps(body) if body is not None else None)
        return self.stack.http.request(
            method, path, query=build_query(query or {}), headers=all_headers, body=payload
        )

    def sign_in(self, phone: str) -> str:
        response = self.call("POST", "/v1/sessions", {"phoneNumber": phone})
        assert response.status == 201, response.body
        return str(response.json()["token"])

    def send(self, token: str, chat_id: str, text: str, client_message_id: str | None = None) -> HttpResult:
        return self.call(
            "POST",
            f"/v1/chats/{chat_id}/messages",
            {"text": text, "clientMessageId": client_message_id or uuid.uuid4().hex},
            token=token,
        )


@pytest.fixture
def stack() -> Iterator[InProcessStack]:
    with mock_aws():
        yield InProcessStack.create()


@pytest.fixture
def api(stack: InProcessStack) -> ApiClient:
    return ApiClient(stack)
