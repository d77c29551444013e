"""The WebSocket API read from template.yaml: its stage name comes from the Stage parameter."""

from __future__ import annotations

from local.template import Template


def test_the_websocket_stage_is_the_stage_parameter() -> None:
    # Given the application's template, whose WebSocket stage is named by !Ref Stage
    default, prod = Template.load(), Template.load(parameters={"Stage": "prod"})

    # Then the emulated API serves that stage (its @connections path and events say so)
    assert [api.stage for api in default.websocket_apis()] == ["dev"]
    assert [api.stage for api in prod.websocket_apis()] == ["prod"]
