"""``PUBLIC_ROUTES`` (the routes the API functions let through without a token) against
template.yaml, where API Gateway learns the same thing (``Auth: {Authorizer: NONE}``)."""

from __future__ import annotations

from typing import Any

from samtranslator.yaml_helper import yaml_parse

from chatflow.api.http import PUBLIC_ROUTES
from local.template import TEMPLATE_PATH, Template


def _http_events() -> list[dict[str, Any]]:
    source = yaml_parse(TEMPLATE_PATH.read_text(encoding="utf-8"))
    return [
        event.get("Properties") or {}
        for resource in source["Resources"].values()
        if resource.get("Type") == "AWS::Serverless::Function"
        for event in ((resource.get("Properties") or {}).get("Events") or {}).values()
        if event.get("Type") == "HttpApi"
    ]


def test_given_the_template_when_routes_marked_without_authorizer_are_listed_then_they_are_public() -> None:
    # Given the HTTP API events of the template's functions
    events = _http_events()

    # When those marked Auth: {Authorizer: NONE} are listed
    marked = {
        f"{e['Method'].upper()} {e['Path']}"
        for e in events
        if (e.get("Auth") or {}).get("Authorizer") == "NONE"
    }

    # Then they are exactly PUBLIC_ROUTES
    assert marked == PUBLIC_ROUTES


def test_given_the_deployed_api_when_its_routes_are_read_then_only_the_public_routes_have_no_authorizer() -> (
    None
):
    # Given the HTTP API as SAM turns the template into it (security NONE on the public routes)
    routes = Template.load().http_routes()

    # When the routes API Gateway lets through without the authorizer are listed
    open_routes = {route.route_key for route in routes if route.authorizer is None}

    # Then they are exactly PUBLIC_ROUTES, and every other route has the authorizer
    assert open_routes == PUBLIC_ROUTES
    assert len(routes) > len(PUBLIC_ROUTES)
