"""template.yaml's security settings that checkov does not judge: the reasons and the log lines.

checkov (``make validate``) fails on any finding that is neither fixed nor skipped; these
tests keep the skips honest (each says why) and the access logs free of what must not be
logged (paths name phone numbers; the WebSocket ``$connect`` query carries the session token).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

from local.template import TEMPLATE_PATH

# Context variables that would put a phone number or a session token in the logs.
_FORBIDDEN_VARIABLE = re.compile(r"path|query|header|token|body", re.IGNORECASE)


@pytest.fixture(scope="module")
def resources() -> dict[str, dict[str, Any]]:
    template: dict[str, Any] = yaml_parse(TEMPLATE_PATH.read_text(encoding="utf-8"))
    return dict(template["Resources"])


def _skips(resource: dict[str, Any]) -> list[dict[str, Any]]:
    return list(((resource.get("Metadata") or {}).get("checkov") or {}).get("skip") or [])


def test_every_checkov_skip_names_a_check_and_says_why(resources: dict[str, dict[str, Any]]) -> None:
    # Given every checkov skip in the template
    skips = [(logical_id, skip) for logical_id, resource in resources.items() for skip in _skips(resource)]

    # Then there are some, each names one check, and gives a reason of more than a few words
    assert len(skips) >= 40
    for logical_id, skip in skips:
        assert re.fullmatch(r"CKV2?_AWS_\d+", str(skip.get("id"))), (logical_id, skip)
        assert len(str(skip.get("comment", "")).split()) >= 8, (
            f"{logical_id} skips {skip['id']} without a reason"
        )


def test_no_check_is_skipped_twice_on_one_resource(resources: dict[str, dict[str, Any]]) -> None:
    for logical_id, resource in resources.items():
        ids = [skip["id"] for skip in _skips(resource)]
        assert len(ids) == len(set(ids)), logical_id


def _access_log(resources: dict[str, dict[str, Any]], logical_id: str) -> dict[str, Any]:
    return dict(resources[logical_id]["Properties"]["AccessLogSettings"])


@pytest.mark.parametrize("api", ["HttpApi", "WebSocketStage"])
def test_access_logs_are_json_lines_without_paths_queries_or_tokens(
    resources: dict[str, dict[str, Any]], api: str
) -> None:
    # Given the API's access log settings
    settings = _access_log(resources, api)

    # When a line is written (every $context variable replaced by a value)
    line = re.sub(r"\$context\.[A-Za-z.]+", "value", settings["Format"])

    # Then it is one JSON object (CloudWatch Logs Insights reads its fields)
    fields = json.loads(line)
    assert {"requestId", "ip", "requestTime", "routeKey", "status"} <= set(fields)
    # And no variable logs a path, a query string, a header, a body or a token
    variables = re.findall(r"\$context\.([A-Za-z.]+)", settings["Format"])
    assert variables
    assert [v for v in variables if _FORBIDDEN_VARIABLE.search(v)] == []


@pytest.mark.parametrize(
    ("api", "log_group"), [("HttpApi", "HttpApiAccessLogs"), ("WebSocketStage", "WebSocketAccessLogs")]
)
def test_access_logs_go_to_a_log_group_that_expires_them(
    resources: dict[str, dict[str, Any]], api: str, log_group: str
) -> None:
    # Given the API's access log destination
    destination = _access_log(resources, api)["DestinationArn"]

    # Then it is the stack's own log group, whose lines are kept AccessLogRetentionDays
    assert destination == {"Fn::GetAtt": [log_group, "Arn"]}
    assert resources[log_group]["Type"] == "AWS::Logs::LogGroup"
    assert resources[log_group]["Properties"]["RetentionInDays"] == {"Ref": "AccessLogRetentionDays"}


def test_every_dead_letter_queue_has_an_alarm_watching_it(resources: dict[str, dict[str, Any]]) -> None:
    # Given every dead-letter queue of the template (what no consumer may lose unnoticed)
    dead_letter_queues = {
        logical_id
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::SQS::Queue" and "DeadLetter" in logical_id
    }

    # When the alarms' watched queues are collected
    watched = {
        dimension["Value"]["Fn::GetAtt"][0]
        for resource in resources.values()
        if resource["Type"] == "AWS::CloudWatch::Alarm"
        for dimension in resource["Properties"].get("Dimensions", [])
        if dimension.get("Name") == "QueueName" and isinstance(dimension.get("Value"), dict)
    }

    # Then each dead-letter queue has one
    assert len(dead_letter_queues) >= 8
    assert dead_letter_queues <= watched, sorted(dead_letter_queues - watched)
