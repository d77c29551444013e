"""API Gateway HTTP API (payload format 2.0) in front of the template's functions.

Turns a request into the event API Gateway sends, runs the route's authorizer the way
API Gateway does (``local.authorizer``), calls the route's function and turns its result
into a response; answers CORS preflights from the API's ``CorsConfiguration``. API
Gateway's own answers keep its own shape (``{"message": "Not Found"}``), as in AWS: an
unknown route, or a method no route has (``TRACE``, ``QUERY``...), is a 404.

No sockets here: ``local.edge`` serves this over HTTP, tests call it directly.
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

from local.authorizer import judge_failure, judge_policy, judge_simple
from local.specs import ACCOUNT_ID, REGION, FunctionError, Invoker
from local.template import HttpAuthorizer, HttpRoute

_JSON = {"content-type": "application/json"}
# API Gateway's payload limit for HTTP APIs.
MAX_BODY_BYTES = 10 * 1024 * 1024


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


def gateway_error(status: int, message: str) -> HttpResult:
    """An answer of API Gateway itself: ``{"message": ...}``."""
    return HttpResult(status, dict(_JSON), json.dumps({"message": message}))


_GATEWAY_MESSAGES = {401: "Unauthorized", 403: "Forbidden", 500: "Internal Server Error"}


class Cors:
    """An HTTP API's ``CorsConfiguration``, applied as API Gateway applies it.

    API Gateway answers preflight requests itself (whatever the routes), adds the allowed
    origin to every response, and ignores CORS headers returned by the integration.
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self.origins = [str(o) for o in config.get("allowOrigins") or []]
        self.methods = [str(m) for m in config.get("allowMethods") or ["*"]]
        self.headers = [str(h) for h in config.get("allowHeaders") or ["*"]]
        self.expose = [str(h) for h in config.get("exposeHeaders") or []]
        self.credentials = bool(config.get("allowCredentials"))
        self.max_age = config.get("maxAge")

    @staticmethod
    def is_preflight(method: str, headers: dict[str, str]) -> bool:
        lowered = {k.lower() for k in headers}
        return method.upper() == "OPTIONS" and "access-control-request-method" in lowered

    def response_headers(self, origin: str | None, *, preflight: bool) -> dict[str, str]:
        """The CORS headers for a request from ``origin`` (none for an origin not allowed)."""
        if not origin or ("*" not in self.origins and origin not in self.origins):
            return {}
        headers = {"access-control-allow-origin": "*" if "*" in self.origins else origin}
        if self.credentials:
            headers["access-control-allow-credentials"] = "true"
        if self.expose:
            headers["access-control-expose-headers"] = ",".join(self.expose)
        if preflight:
            headers["access-control-allow-methods"] = ",".join(self.methods)
            headers["access-control-allow-headers"] = ",".join(self.headers)
            if self.max_age is not None:
                headers["access-control-max-age"] = str(self.max_age)
        return headers

    def preflight(self, origin: str | None) -> HttpResult:
        return HttpResult(204, self.response_headers(origin, preflight=True), "")

    def apply(self, result: HttpResult, origin: str | None) -> HttpResult:
        """``result`` with the integration's CORS headers replaced by the API's."""
        kept = {k: v for k, v in result.headers.items() if not k.lower().startswith("access-control-")}
        headers = kept | self.response_headers(origin, preflight=False)
        return HttpResult(result.status, headers, result.body, result.cookies, result.is_base64_encoded)


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
        body: str | bytes | None = None,
        source_ip: str = "127.0.0.1",
    ) -> HttpResult:
        """The answer to one request; a body that is not UTF-8 reaches the function base64-encoded."""
        method = method.upper()
        matched = self.match(method, raw_path)
        if matched is None:
            return gateway_error(404, "Not Found")
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
            return gateway_error(500, "Internal Server Error")
        return _response(result)

    def _authorize(
        self, authorizer: HttpAuthorizer, route: HttpRoute, event: dict[str, Any], trigger: str
    ) -> HttpResult | None:
        identity = [_identity_value(source, event) for source in authorizer.identity_sources]
        if any(not value for value in identity):
            return gateway_error(401, "Unauthorized")
        route_arn = (
            f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{self.api_id}/$default/"
            f"{event['requestContext']['http']['method']}{event['rawPath']}"
        )
        request = {
            "version": authorizer.payload_format_version,
            "type": "REQUEST",
            "routeArn": route_arn,
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
            answer = self._invoke(authorizer.function, request, f"{trigger} (authorizer)")
        except FunctionError as error:
            verdict = judge_failure(error)
        else:
            simple = authorizer.simple_responses and authorizer.payload_format_version == "2.0"
            verdict = (
                judge_simple(answer) if simple else judge_policy(answer, route_arn, scalar_context=False)
            )
        if verdict.status is not None:
            return gateway_error(verdict.status, _GATEWAY_MESSAGES.get(verdict.status, "Forbidden"))
        event["requestContext"]["authorizer"] = {"lambda": verdict.context}
        return None

    def _event(
        self,
        route: HttpRoute,
        method: str,
        raw_path: str,
        params: dict[str, str],
        query: str,
        headers: dict[str, str],
        body: str | bytes | None,
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
        if isinstance(body, bytes):
            raw = body
            try:
                body = raw.decode("utf-8")
            except UnicodeDecodeError:
                body = base64.b64encode(raw).decode("ascii")
                event["isBase64Encoded"] = True
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
    if source.startswith("$request.header."):
        headers: dict[str, str] = event["headers"]
        return headers.get(source.split(".", 2)[2].lower())
    if source.startswith("$request.querystring."):
        query: dict[str, str] = event.get("queryStringParameters") or {}
        return query.get(source.split(".", 2)[2])
    return None


def _response(result: Any) -> HttpResult:
    """A function's result as API Gateway (payload 2.0) turns it into a response.

    A result without ``statusCode`` is a JSON body with status 200; a malformed one (a
    status that is not an HTTP status, headers that are not an object, a body that is not
    base64 when it says so) is API Gateway's ``500 Internal Server Error``.
    """
    if not (isinstance(result, dict) and "statusCode" in result):
        return HttpResult(200, dict(_JSON), result if isinstance(result, str) else json.dumps(result))
    status = result["statusCode"]
    headers_in = result.get("headers") or {}
    multi_in = result.get("multiValueHeaders") or {}
    cookies_in = result.get("cookies") or []
    if (
        isinstance(status, bool)
        or not isinstance(status, int | str)
        or not str(status).isdigit()
        or not 100 <= int(status) <= 599
        or not isinstance(headers_in, dict)
        or not isinstance(multi_in, dict)
        or not isinstance(cookies_in, list)
    ):
        return gateway_error(500, "Internal Server Error")
    headers = {str(k).lower(): str(v) for k, v in headers_in.items()}
    for key, values in multi_in.items():
        headers[str(key).lower()] = (
            ",".join(str(v) for v in values) if isinstance(values, list) else str(values)
        )
    response = HttpResult(
        status=int(status),
        headers=headers,
        body=str(result.get("body") or ""),
        cookies=[str(c) for c in cookies_in],
        is_base64_encoded=bool(result.get("isBase64Encoded")),
    )
    if response.is_base64_encoded:
        try:
            base64.b64decode(response.body, validate=True)
        except ValueError:
            return gateway_error(500, "Internal Server Error")
    return response


def build_query(params: dict[str, Any]) -> str:
    return urlencode({k: v for k, v in params.items() if v is not None}, quote_via=quote)
