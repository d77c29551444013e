"""The application running in-process against moto, and a client that speaks its HTTP API."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.endpoint import Endpoint
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
        raw_body: str | bytes | None = None,
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

    def open_direct(self, token: str, other: str) -> str:
        """The chatId of the caller's direct chat with ``other`` (created if needed)."""
        response = self.call("POST", "/v1/chats", {"type": "direct", "members": [other]}, token=token)
        assert response.status in (200, 201), response.body
        return str(response.json()["chatId"])

    def create_group(self, token: str, members: list[str], name: str = "team") -> str:
        response = self.call(
            "POST", "/v1/chats", {"type": "group", "name": name, "members": members}, token=token
        )
        assert response.status == 201, response.body
        return str(response.json()["chatId"])

    def all_pages(
        self, path: str, token: str, *, limit: int, query: dict[str, Any] | None = None
    ) -> list[list[dict[str, Any]]]:
        """Every page of a paginated list, following nextCursor until it is null."""
        pages: list[list[dict[str, Any]]] = []
        cursor: str | None = None
        while True:
            response = self.call(
                "GET", path, token=token, query={**(query or {}), "limit": limit, "cursor": cursor}
            )
            assert response.status == 200, response.body
            body = response.json()
            pages.append(body["items"])
            cursor = body["nextCursor"]
            if cursor is None:
                return pages
            assert len(pages) < 1000, "pagination does not end"


def assert_error(response: HttpResult, status: int, code: str) -> dict[str, Any]:
    """The response is the contract's error shape with this status and code; its ``error``."""
    assert response.status == status, (response.status, response.body)
    body = response.json()
    assert isinstance(body, dict), response.body
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) <= {"code", "message", "details"}, error
    assert error["code"] == code, error
    assert isinstance(error["message"], str), error
    assert error["message"], error
    for detail in error.get("details") or []:
        assert set(detail) == {"field", "message"}, detail
        assert isinstance(detail["field"], str), detail
        assert isinstance(detail["message"], str), detail
    return dict(error)


@pytest.fixture
def stack() -> Iterator[InProcessStack]:
    """The stack in ``AuthMode=phone``, so that tests sign in without SMS codes
    (``test_verifications_api`` covers the default, ``otp``)."""
    with mock_aws():
        yield InProcessStack.create(parameters={"AuthMode": "phone"})


@pytest.fixture
def api(stack: InProcessStack) -> ApiClient:
    return ApiClient(stack)


@pytest.fixture
def calls() -> Iterator[list[str]]:
    """The AWS operations this process calls meanwhile (functions run in-process), in order."""
    made: list[str] = []
    make_request = Endpoint.make_request

    def counted(self: Endpoint, operation_model: Any, request_dict: Any) -> Any:
        made.append(operation_model.name)
        return make_request(self, operation_model, request_dict)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Endpoint, "make_request", counted)
        yield made
