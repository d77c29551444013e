"""API Gateway (HTTP API, payload format 2.0) in front of the template's functions.

Turns a request into the event API Gateway sends, runs the authorizer the way API
Gateway does, calls the route's function and returns its response.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from local.runtime import LocalFunction
from local.template import HttpRoute, Template

_API_ARN = "arn:aws:execute-api:us-east-1:123456789012:local"


@dataclass(frozen=True)
class HttpResult:
    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


def _pattern(path: str) -> re.Pattern[str]:
    regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path))
    return re.compile(f"^{regex}$")


class HttpApi:
    def __init__(self, template: Template, functions: dict[str, LocalFunction]) -> None:
        self._routes = [(route, _pattern(route.path)) for route in template.http_routes()]
        self._functions = functions
        authorizer = template.http_authorizer()
        self._authorizer = functions[authorizer] if authorizer else None

    def match(self, method: str, path: str) -> tuple[HttpRoute, dict[str, str]] | None:
        for route, pattern in self._routes:
            found = pattern.match(path)
            if found and route.method == method:
                return route, found.groupdict()
        return None

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
            return HttpResult(404, {"content-type": "application/json"}, json.dumps({"message": "Not Found"}))
        route, params = matched
        lowered = {k.lower(): v for k, v in (headers or {}).items()}
        event = self._event(route, raw_path, params, query, lowered, body, source_ip)
        if route.authorized and self._authorizer is not None:
            decision = self._authorizer.invoke(self._authorizer_event(route, event))
            if not decision.get("isAuthorized"):
                return HttpResult(
                    403, {"content-type": "application/json"}, json.dumps({"message": "Forbidden"})
                )
            event["requestContext"]["authorizer"] = {"lambda": decision.get("context") or {}}
        result = self._functions[route.function].invoke(event)
        return HttpResult(
            status=int(result.get("statusCode", 200)),
            headers={k.lower(): str(v) for k, v in (result.get("headers") or {}).items()},
            body=result.get("body") or "",
        )

    @staticmethod
    def _event(
        route: HttpRoute,
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
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route.route_key,
            "rawPath": raw_path,
            "rawQueryString": query,
            "headers": headers,
            "requestContext": {
                "accountId": "123456789012",
                "apiId": "local",
                "domainName": "127.0.0.1",
                "domainPrefix": "local",
                "http": {
                    "method": route.method,
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
        if query_params:
            event["queryStringParameters"] = query_params
        if params:
            event["pathParameters"] = params
        if body is not None:
            event["body"] = body
        return event

    @staticmethod
    def _authorizer_event(route: HttpRoute, event: dict[str, Any]) -> dict[str, Any]:
        return {
            "version": "2.0",
            "type": "REQUEST",
            "routeArn": f"{_API_ARN}/$default/{route.method}{route.path}",
            "identitySource": [],
            "routeKey": route.route_key,
            "rawPath": event["rawPath"],
            "rawQueryString": event["rawQueryString"],
            "headers": event["headers"],
            "queryStringParameters": event.get("queryStringParameters"),
            "requestContext": event["requestContext"],
            "pathParameters": event.get("pathParameters"),
        }


def build_query(params: dict[str, Any]) -> str:
    return urlencode({k: v for k, v in params.items() if v is not None}, quote_via=quote)
