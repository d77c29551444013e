"""API Gateway HTTP API (payload format 2.0) in front of the template's functions.

Turns a request into the event API Gateway sends, runs the route's authorizer the way
API Gateway does, calls the route's function and turns its result into a response.
API Gateway's own answers keep its own shape (``{"message": "Not Found"}``), as in AWS.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from local.specs import ACCOUNT_ID, REGION, FunctionError, Invoker
from local.template import HttpAuthorizer, HttpRoute

_JSON = {"content-type": "application/json"}


@dataclass(frozen=True)
class HttpResult:
    status: int
    headers: dict[str, str]
    body: str
    cookies: list[str] = field(default_factory=list)
    is_base64_encoded: bool = False

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def raw(self) -> bytes:
        return base64.b64decode(self.body) if self.is_base64_encoded else self.body.encode("utf-8")


def _gateway_error(status: int, message: str) -> HttpResult:
    return HttpResult(status, dict(_JSON), json.dumps({"message": message}))


def _pattern(path: str) -> re.Pattern[str]:
    regex = re.escape(path)
    regex = re.sub(r"\\\{(\w+)\\\+\\\}", r"(?P<\1>.+)", regex)
    regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", regex)
    return re.compile(f"^{regex}$")


def _specificity(route: HttpRoute) -> tuple[int, int, int]:
    """API Gateway prefers exact paths, then fewer parameters, then a named method over ANY."""
    greedy = route.path.count("+}")
    return (greedy, route.path.count("{"), 1 if route.method == "ANY" else 0)


class HttpApi:
    def __init__(
        self, routes: list[HttpRoute], invoke: Invoker, *, api_id: str = "httpapi", domain: str = "127.0.0.1"
    ) -> None:
        ordered = sorted((r for r in routes if r.path != "$default"), key=_specificity)
        self._routes = [(route, _pattern(route.path)) for route in ordered]
        self._default = next((r for r in routes if r.path == "$default"), None)
        self._invoke = invoke
        self.api_id = api_id
        self.domain = domain

    @property
    def routes(self) -> list[HttpRoute]:
        return [route for route, _ in self._routes] + ([self._default] if self._default else [])

    def match(self, method: str, path: str) -> tuple[HttpRoute, dict[str, str]] | None:
        for route, pattern in self._routes:
            found = pattern.match(path)
            if found and route.method in (method, "ANY"):
                return route, found.groupdict()
        return (self._default, {}) if self._default else None

    def request(
        self,
        method: str,
        raw_path: str,
        *,
        query: str = "",
        headers: dict[str, str] | None = None,
        body: str | None = None,
        source_ip: str = "127.0.0.1",
    ) -> HttpResult:
        method = method.upper()
        matched = self.match(method, raw_path)
        if matched is None:
            return _gateway_error(404, "Not Found")
        route, params = matched
        lowered = {k.lower(): v for k, v in (headers or {}).items()}
        event = self._event(route, method, raw_path, params, query, lowered, body, source_ip)
        trigger = f"http {method} {raw_path}"
        if route.authorizer is not None:
            denied = self._authorize(route.authorizer, route, event, trigger)
            if denied is not None:
                return denied
        try:
            result = self._invoke(route.function, event, trigger)
        except FunctionError:
            return _gateway_error(500, "Internal Server Error")
        return _response(result)

    def _authorize(
        self, authorizer: HttpAuthorizer, route: HttpRoute, event: dict[str, Any], trigger: str
    ) -> HttpResult | None:
        identity = [_identity_value(source, event) for source in authorizer.identity_sources]
        if any(value is None for value in identity):
            return _gateway_error(401, "Unauthorized")
        request = {
            "version": authorizer.payload_format_version,
            "type": "REQUEST",
            "routeArn": f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{self.api_id}/$default/"
            f"{event['requestContext']['http']['method']}{event['rawPath']}",
            "identitySource": identity,
            "routeKey": route.route_key,
            "rawPath": event["rawPath"],
            "rawQueryString": event["rawQueryString"],
            "cookies": event.get("cookies"),
            "headers": event["headers"],
            "queryStringParameters": event.get("queryStringParameters"),
            "requestContext": event["requestContext"],
            "pathParameters": event.get("pathParameters"),
            "stageVariables": None,
        }
        try:
            decision = self._invoke(authorizer.function, request, f"{trigger} (authorizer)")
        except FunctionError:
            return _gateway_error(500, "Internal Server Error")
        if not isinstance(decision, dict):
            return _gateway_error(500, "Internal Server Error")
        if authorizer.simple_responses:
            allowed = decision.get("isAuthorized") is True
        else:
            statements = (decision.get("policyDocument") or {}).get("Statement") or []
            allowed = bool(statements) and all(s.get("Effect") == "Allow" for s in statements)
        if not allowed:
            return _gateway_error(403, "Forbidden")
        context = dict(decision.get("context") or {})
        if not authorizer.simple_responses and "principalId" in decision:
            context["principalId"] = decision["principalId"]
        event["requestContext"]["authorizer"] = {"lambda": context}
        return None

    def _event(
        self,
        route: HttpRoute,
        method: str,
        raw_path: str,
        params: dict[str, str],
        query: str,
        headers: dict[str, str],
        body: str | None,
        source_ip: str,
    ) -> dict[str, Any]:
        now = time.time()
        query_params: dict[str, str] = {}
        for key, value in parse_qsl(query, keep_blank_values=True):
            query_params[key] = f"{query_params[key]},{value}" if key in query_params else value
        cookies = [c.strip() for c in headers.pop("cookie", "").split(";") if c.strip()]
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route.route_key,
            "rawPath": raw_path,
            "rawQueryString": query,
            "headers": headers,
            "requestContext": {
                "accountId": ACCOUNT_ID,
                "apiId": self.api_id,
                "domainName": self.domain,
                "domainPrefix": self.domain.split(".")[0],
                "http": {
                    "method": method,
                    "path": raw_path,
                    "protocol": "HTTP/1.1",
                    "sourceIp": source_ip,
                    "userAgent": headers.get("user-agent", ""),
                },
                "requestId": str(uuid.uuid4()),
                "routeKey": route.route_key,
                "stage": "$default",
                "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
                "timeEpoch": int(now * 1000),
            },
            "isBase64Encoded": False,
        }
        if cookies:
            event["cookies"] = cookies
        if query_params:
            event["queryStringParameters"] = query_params
        if params:
            event["pathParameters"] = params
        if body is not None:
            event["body"] = body
        return event


def _identity_value(source: str, event: dict[str, Any]) -> str | None:
    """The value of ``$request.header.X`` / ``$request.querystring.X``; None when absent."""
    values: dict[str, str] = {}
    if source.startswith("$request.header."):
        values = event["headers"]
        return values.get(source.split(".", 2)[2].lower())
    if source.startswith("$request.querystring."):
        values = event.get("queryStringParameters") or {}
        return values.get(source.split(".", 2)[2])
    return None


def _response(result: Any) -> HttpResult:
    """A function's result as API Gateway (payload 2.0) turns it into a response."""
    if not (isinstance(result, dict) and "statusCode" in result):
        # Anything else is taken as a JSON body with status 200.
        return HttpResult(200, dict(_JSON), result if isinstance(result, str) else json.dumps(result))
    headers = {k.lower(): str(v) for k, v in (result.get("headers") or {}).items()}
    for key, values in (result.get("multiValueHeaders") or {}).items():
        headers[key.lower()] = ",".join(str(v) for v in values)
    return HttpResult(
        status=int(result["statusCode"]),
        headers=headers,
        body=str(result.get("body") or ""),
        cookies=[str(c) for c in result.get("cookies") or []],
        is_base64_encoded=bool(result.get("isBase64Encoded")),
    )


def build_query(params: dict[str, Any]) -> str:
    return urlencode({k: v for k, v in params.items() if v is not None}, quote_via=quote)
