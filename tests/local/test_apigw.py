"""The local HTTP API without sockets: routing, payload 2.0 events, authorizers, CORS, gateway answers."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from local.apigw import Cors, HttpApi
from local.specs import FunctionError
from local.template import HttpAuthorizer, HttpRoute

Handler = Any


class FakeFunctions:
    """An ``Invoker`` over plain callables keyed by function id, recording every event it got."""

    def __init__(self, handlers: dict[str, Handler]) -> None:
        self.handlers = handlers
        self.events: dict[str, list[dict[str, Any]]] = {}

    def __call__(self, function: str, event: dict[str, Any], trigger: str) -> Any:
        self.events.setdefault(function, []).append(event)
        return self.handlers[function](event)


def ok(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"ok": True}),
    }


def caller(event: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": 200, "body": json.dumps(event["requestContext"].get("authorizer"))}


SIMPLE = HttpAuthorizer("Session", "Authorizer", simple_responses=True)
IAM = HttpAuthorizer("Session", "Authorizer", simple_responses=False)
CHATS = HttpRoute("GET", "/v1/chats", "Chats")


def api(*routes: HttpRoute, **handlers: Handler) -> tuple[HttpApi, FakeFunctions]:
    functions = FakeFunctions(handlers)
    return HttpApi(list(routes), functions, api_id="httpapi"), functions


# --- routing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["TRACE", "QUERY", "PUT", "OPTIONS", "HEAD", "PROPFIND"])
def test_a_method_no_route_has_is_api_gateways_404(method: str) -> None:
    # Given an API with only GET /v1/chats
    gateway, functions = api(CHATS, Chats=ok)

    # When another method asks for that path
    result = gateway.request(method, "/v1/chats")

    # Then API Gateway answers 404 Not Found in JSON, and no function runs
    assert (result.status, result.json()) == (404, {"message": "Not Found"})
    assert result.headers["content-type"] == "application/json"
    assert functions.events == {}


def test_an_unknown_path_is_api_gateways_404() -> None:
    gateway, _ = api(CHATS, Chats=ok)

    result = gateway.request("GET", "/v1/nowhere")

    assert (result.status, result.json()) == (404, {"message": "Not Found"})


def test_an_exact_path_wins_over_a_parameter_and_any_method() -> None:
    # Given /v1/chats/{chatId} (GET), ANY /v1/chats/{chatId} and GET /v1/chats/search
    routes = [
        HttpRoute("ANY", "/v1/chats/{chatId}", "Any"),
        HttpRoute("GET", "/v1/chats/{chatId}", "One"),
        HttpRoute("GET", "/v1/chats/search", "Search"),
    ]
    gateway, _ = api(*routes)

    # When paths are matched, Then the most specific route wins
    assert gateway.match("GET", "/v1/chats/search") == (routes[2], {})
    assert gateway.match("GET", "/v1/chats/c1") == (routes[1], {"chatId": "c1"})
    assert gateway.match("DELETE", "/v1/chats/c1") == (routes[0], {"chatId": "c1"})


def test_the_event_is_payload_format_2() -> None:
    # Given a route with a path parameter
    gateway, functions = api(HttpRoute("POST", "/v1/chats/{chatId}/messages", "Send"), Send=ok)

    # When a request with a query string, cookies and a body arrives
    gateway.request(
        "POST",
        "/v1/chats/c1/messages",
        query="a=1&a=2&b=",
        headers={"Content-Type": "application/json", "Cookie": "x=1; y=2", "User-Agent": "ua"},
        body='{"text": "hi"}',
        source_ip="10.0.0.9",
    )

    # Then the function gets API Gateway's v2 event
    (event,) = functions.events["Send"]
    assert (event["version"], event["routeKey"], event["rawPath"]) == (
        "2.0",
        "POST /v1/chats/{chatId}/messages",
        "/v1/chats/c1/messages",
    )
    assert event["rawQueryString"] == "a=1&a=2&b="
    assert event["queryStringParameters"] == {"a": "1,2", "b": ""}
    assert event["pathParameters"] == {"chatId": "c1"}
    assert event["cookies"] == ["x=1", "y=2"]
    assert "cookie" not in event["headers"]
    assert event["headers"]["content-type"] == "application/json"
    assert (event["body"], event["isBase64Encoded"]) == ('{"text": "hi"}', False)
    http = event["requestContext"]["http"]
    assert (http["method"], http["sourceIp"], http["userAgent"]) == ("POST", "10.0.0.9", "ua")


def test_a_body_that_is_not_utf8_reaches_the_function_base64_encoded() -> None:
    gateway, functions = api(HttpRoute("POST", "/upload", "Upload"), Upload=ok)

    gateway.request("POST", "/upload", body=b"\xff\xfe\x00")

    (event,) = functions.events["Upload"]
    assert (event["body"], event["isBase64Encoded"]) == (base64.b64encode(b"\xff\xfe\x00").decode(), True)


# --- responses ---------------------------------------------------------------------------------


def test_a_result_without_status_code_is_a_json_200() -> None:
    gateway, _ = api(CHATS, Chats=lambda event: {"items": []})

    result = gateway.request("GET", "/v1/chats")

    assert (result.status, result.json()) == (200, {"items": []})


def test_cookies_and_multi_value_headers_are_kept() -> None:
    answer = {"statusCode": 201, "cookies": ["a=1", "b=2"], "multiValueHeaders": {"X-Many": ["1", "2"]}}
    gateway, _ = api(CHATS, Chats=lambda event: answer)

    result = gateway.request("GET", "/v1/chats")

    assert (result.status, result.cookies, result.headers["x-many"]) == (201, ["a=1", "b=2"], "1,2")


@pytest.mark.parametrize(
    "answer",
    [
        {"statusCode": "abc"},
        {"statusCode": 99},
        {"statusCode": 600},
        {"statusCode": True},
        {"statusCode": 200, "headers": ["x"]},
        {"statusCode": 200, "body": "not base64!", "isBase64Encoded": True},
    ],
)
def test_a_malformed_function_result_is_api_gateways_500(answer: dict[str, Any]) -> None:
    gateway, _ = api(CHATS, Chats=lambda event: answer)

    result = gateway.request("GET", "/v1/chats")

    assert (result.status, result.json()) == (500, {"message": "Internal Server Error"})


def test_a_failing_function_is_api_gateways_500() -> None:
    def boom(event: dict[str, Any]) -> Any:
        raise FunctionError("Chats", "RuntimeError", "boom")

    gateway, _ = api(CHATS, Chats=boom)

    result = gateway.request("GET", "/v1/chats")

    assert (result.status, result.json()) == (500, {"message": "Internal Server Error"})


# --- authorizers -------------------------------------------------------------------------------


def test_a_simple_response_passes_its_context_to_the_function() -> None:
    # Given a route behind an authorizer with simple responses
    route = HttpRoute("GET", "/v1/me", "Me", SIMPLE)
    gateway, _ = api(
        route, Me=caller, Authorizer=lambda event: {"isAuthorized": True, "context": {"phoneNumber": "+1"}}
    )

    # When it is called
    result = gateway.request("GET", "/v1/me")

    # Then the function sees the context under authorizer.lambda
    assert (result.status, result.json()) == (200, {"lambda": {"phoneNumber": "+1"}})


def test_a_simple_response_that_says_no_is_403() -> None:
    gateway, functions = api(
        HttpRoute("GET", "/v1/me", "Me", SIMPLE), Me=caller, Authorizer=lambda event: {"isAuthorized": False}
    )

    result = gateway.request("GET", "/v1/me")

    assert (result.status, result.json()) == (403, {"message": "Forbidden"})
    assert "Me" not in functions.events


def test_an_iam_answer_is_judged_on_the_route_arn() -> None:
    # Given an authorizer (IAM policy answers) that allows GET /v1/me only, and denies DELETE /v1/me
    def policy(event: dict[str, Any]) -> dict[str, Any]:
        base = "arn:aws:execute-api:us-east-1:123456789012:httpapi/$default"
        return {
            "principalId": "u1",
            "policyDocument": {
                "Statement": [
                    {"Effect": "Allow", "Action": "execute-api:Invoke", "Resource": f"{base}/*/v1/me"},
                    {"Effect": "Deny", "Action": "execute-api:Invoke", "Resource": f"{base}/DELETE/*"},
                ]
            },
            "context": {"userId": "u1"},
        }

    routes = [HttpRoute("GET", "/v1/me", "Me", IAM), HttpRoute("DELETE", "/v1/me", "Me", IAM)]
    gateway, functions = api(*routes, Me=caller, Authorizer=policy)

    # When both are called
    allowed = gateway.request("GET", "/v1/me")
    denied = gateway.request("DELETE", "/v1/me")

    # Then the Allow lets GET through with the principal, and the Deny wins for DELETE
    assert (allowed.status, allowed.json()) == (200, {"lambda": {"principalId": "u1", "userId": "u1"}})
    assert (denied.status, denied.json()) == (403, {"message": "Forbidden"})
    (authorizer_event,) = functions.events["Authorizer"][:1]
    assert (
        authorizer_event["routeArn"]
        == "arn:aws:execute-api:us-east-1:123456789012:httpapi/$default/GET/v1/me"
    )


@pytest.mark.parametrize("headers", [{}, {"Authorization": ""}])
def test_a_missing_identity_source_is_401_without_calling_the_authorizer(headers: dict[str, str]) -> None:
    authorizer = HttpAuthorizer("Session", "Authorizer", identity_sources=("$request.header.Authorization",))
    gateway, functions = api(
        HttpRoute("GET", "/v1/me", "Me", authorizer), Me=caller, Authorizer=lambda e: {"isAuthorized": True}
    )

    result = gateway.request("GET", "/v1/me", headers=headers)

    assert (result.status, result.json()) == (401, {"message": "Unauthorized"})
    assert functions.events == {}


@pytest.mark.parametrize(("message", "status"), [("Unauthorized", 401), ("database down", 500)])
def test_an_authorizer_that_raises_is_401_for_unauthorized_else_500(message: str, status: int) -> None:
    def raising(event: dict[str, Any]) -> Any:
        raise FunctionError("Authorizer", "Exception", message)

    gateway, _ = api(HttpRoute("GET", "/v1/me", "Me", SIMPLE), Me=caller, Authorizer=raising)

    assert gateway.request("GET", "/v1/me").status == status


# --- CORS --------------------------------------------------------------------------------------

CONFIG = {
    "allowOrigins": ["*"],
    "allowHeaders": ["authorization", "content-type"],
    "allowMethods": ["GET", "POST"],
    "maxAge": 600,
}


def test_a_preflight_is_answered_204_with_the_configured_headers() -> None:
    result = Cors(CONFIG).preflight("http://app.example")

    assert result.status == 204
    assert result.headers == {
        "access-control-allow-origin": "*",
        "access-control-allow-methods": "GET,POST",
        "access-control-allow-headers": "authorization,content-type",
        "access-control-max-age": "600",
    }


def test_only_options_with_a_requested_method_is_a_preflight() -> None:
    assert Cors.is_preflight("OPTIONS", {"Access-Control-Request-Method": "POST"})
    assert not Cors.is_preflight("OPTIONS", {})
    assert not Cors.is_preflight("GET", {"access-control-request-method": "POST"})


def test_an_origin_not_allowed_gets_no_cors_headers() -> None:
    cors = Cors({"allowOrigins": ["https://app.example"], "allowCredentials": True})

    assert cors.response_headers("https://evil.example", preflight=True) == {}
    assert cors.response_headers("https://app.example", preflight=False) == {
        "access-control-allow-origin": "https://app.example",
        "access-control-allow-credentials": "true",
    }


def test_the_apis_cors_headers_replace_the_functions() -> None:
    # Given a function result carrying CORS headers of its own
    gateway, _ = api(
        CHATS, Chats=lambda e: {"statusCode": 200, "headers": {"Access-Control-Allow-Origin": "x"}}
    )
    result = gateway.request("GET", "/v1/chats")

    # When the API's CORS configuration is applied
    answered = Cors(CONFIG).apply(result, "http://app.example")

    # Then only the API's are left
    assert {k: v for k, v in answered.headers.items() if k.startswith("access")} == {
        "access-control-allow-origin": "*"
    }
