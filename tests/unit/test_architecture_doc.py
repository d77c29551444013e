"""docs/architecture.md against template.yaml, so that the architecture page cannot drift.

Its "Resources" section has one table per kind of resource, under a heading that names
the CloudFormation types it holds (``### Queues (`AWS::SQS::Queue`)``), one row per
resource whose first cell is the logical id in backticks. Checked here: every resource of
the template (and every EventBridge rule SAM makes from a function's ``EventBridgeRule``
event) has a row under a heading of its type; every row names a resource that exists;
every function's row names each of its triggers (its HTTP routes, and the queue, table,
bucket or bus of its other events); the Mermaid diagram shows every function, table,
API and event bus; and "Technology choices" names every library the requirements pin at
the top level.

The template is read as written, through the SAM translator's YAML loader (CloudFormation
tags such as ``!GetAtt`` become ``Fn::GetAtt``), as ``local.template`` reads it before the
transform: the page documents the template's resources, not every role and permission the
transform adds.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from samtranslator.yaml_helper import yaml_parse

from local.template import ROOT, TEMPLATE_PATH

DOC_PATH = ROOT / "docs" / "architecture.md"
# The top-level requirements: the layer's, the development ones (dev.txt is their frozen
# closure), and the tools that have a virtualenv of their own.
REQUIREMENT_FILES = (
    ROOT / "layers" / "shared" / "python" / "requirements.txt",
    ROOT / "requirements" / "dev.in",
    *sorted(path for path in (ROOT / "requirements").glob("*.txt") if path.name != "dev.txt"),
)
_REQUIREMENT_NAME = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)")
_TYPE_IN_HEADING = re.compile(r"`(AWS::[A-Za-z0-9:]+)`")
_ROW_ID = re.compile(r"^\|\s*`([A-Za-z0-9]+)`\s*\|")
# Resources the diagram must show: what a reader follows a message through.
DIAGRAM_TYPES = frozenset(
    {
        "AWS::Serverless::Function",
        "AWS::DynamoDB::Table",
        "AWS::Serverless::HttpApi",
        "AWS::ApiGatewayV2::Api",
        "AWS::Events::EventBus",
    }
)


@dataclass(frozen=True)
class Row:
    """One row of the Resources section: the logical id it names, the types its heading allows."""

    logical_id: str
    types: frozenset[str]
    text: str


def _section(markdown: str, title: str) -> str:
    """The text of ``## <title>`` up to the next ``## `` heading ("" when there is none)."""
    found = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", markdown, flags=re.MULTILINE | re.DOTALL)
    return found.group(1) if found else ""


def inventory(markdown: str) -> list[Row]:
    """The rows of the Resources section, each with the types named by its ``###`` heading."""
    rows: list[Row] = []
    types: frozenset[str] = frozenset()
    for line in _section(markdown, "Resources").splitlines():
        if line.startswith("### "):
            types = frozenset(_TYPE_IN_HEADING.findall(line))
            continue
        found = _ROW_ID.match(line)
        if found:
            rows.append(Row(found.group(1), types, line))
    return rows


def diagram(markdown: str) -> str:
    found = re.search(r"```mermaid\n(.*?)```", markdown, flags=re.DOTALL)
    return found.group(1) if found else ""


def _referenced(value: Any) -> Iterator[str]:
    """The logical ids a property refers to (``Ref``, ``Fn::GetAtt``)."""
    if isinstance(value, dict):
        if isinstance(value.get("Ref"), str):
            yield value["Ref"]
        attribute = value.get("Fn::GetAtt")
        if isinstance(attribute, list) and attribute:
            yield str(attribute[0])
        elif isinstance(attribute, str):
            yield attribute.split(".", 1)[0]
        for item in value.values():
            yield from _referenced(item)
    elif isinstance(value, list):
        for item in value:
            yield from _referenced(item)


def _events(resource: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict((resource.get("Properties") or {}).get("Events") or {})


def resource_types(template: dict[str, Any]) -> dict[str, str]:
    """Logical id → type: the template's resources and the EventBridge rules SAM makes for
    functions' ``EventBridgeRule`` events (named ``<function><event>``)."""
    resources: dict[str, dict[str, Any]] = template.get("Resources") or {}
    found = {logical_id: str(resource.get("Type")) for logical_id, resource in resources.items()}
    for logical_id, resource in resources.items():
        for name, event in _events(resource).items():
            if event.get("Type") == "EventBridgeRule":
                found[f"{logical_id}{name}"] = "AWS::Events::Rule"
    return found


def triggers(resource: dict[str, Any]) -> list[str]:
    """What a function's row must name: ```METHOD /path``` of each HTTP route, and the
    logical id of the queue, stream's table, bucket or bus of each other event."""
    named: list[str] = []
    for event in _events(resource).values():
        properties = event.get("Properties") or {}
        if event.get("Type") == "HttpApi":
            named.append(f"`{str(properties['Method']).upper()} {properties['Path']}`")
            continue
        for key in ("Queue", "Stream", "Bucket", "EventBusName"):
            named.extend(f"`{logical_id}`" for logical_id in _referenced(properties.get(key)))
    return named


def problems(markdown: str, template: dict[str, Any]) -> list[str]:
    """Every way ``markdown`` (docs/architecture.md) has drifted from ``template``."""
    found: list[str] = []
    types = resource_types(template)
    rows = inventory(markdown)
    by_id: dict[str, Row] = {}
    for row in rows:
        if row.logical_id in by_id:
            found.append(f"{row.logical_id}: more than one row in the Resources section")
        by_id[row.logical_id] = row
    for logical_id, kind in sorted(types.items()):
        listed = by_id.get(logical_id)
        if listed is None:
            found.append(f"{logical_id} ({kind}): no row in the Resources section of docs/architecture.md")
        elif kind not in listed.types:
            found.append(f"{logical_id} ({kind}): its row is under a heading that does not name {kind}")
    for row in rows:
        if row.logical_id not in types:
            found.append(
                f"{row.logical_id}: a row in the Resources section, but no such resource in template.yaml"
            )
    resources: dict[str, dict[str, Any]] = template.get("Resources") or {}
    for logical_id, resource in sorted(resources.items()):
        function_row = by_id.get(logical_id)
        if resource.get("Type") != "AWS::Serverless::Function" or function_row is None:
            continue
        for trigger in triggers(resource):
            if trigger not in function_row.text:
                found.append(f"{logical_id}: its row does not name its trigger {trigger}")
    shown = diagram(markdown)
    for logical_id, kind in sorted(types.items()):
        if kind in DIAGRAM_TYPES and not re.search(rf"\b{re.escape(logical_id)}\b", shown):
            found.append(f"{logical_id} ({kind}): not in the Mermaid diagram")
    return found


def requirement_names(text: str) -> list[str]:
    """The package names of a requirements file (extras, versions, comments and ``-r`` dropped)."""
    names = []
    for line in text.splitlines():
        found = _REQUIREMENT_NAME.match(line.split("#", 1)[0].strip())
        if found:
            names.append(found.group(1).lower())
    return names


def undocumented_libraries(markdown: str, names: list[str]) -> list[str]:
    """The ``names`` that "Technology choices" does not name in backticks (``mypy-boto3-*``
    names every package of that prefix)."""
    named = {token.lower() for token in re.findall(r"`([^`\s]+)`", _section(markdown, "Technology choices"))}
    prefixes = tuple(token[:-1] for token in named if token.endswith("*"))
    return [name for name in names if name not in named and not name.startswith(prefixes)]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    document: dict[str, Any] = yaml_parse(TEMPLATE_PATH.read_text(encoding="utf-8"))
    return document


@pytest.fixture(scope="module")
def doc() -> str:
    return DOC_PATH.read_text(encoding="utf-8")


def _new_problems(page: str, doc: str, template: dict[str, Any]) -> list[str]:
    """What ``page`` (an edited copy of the page) adds to the page's own problems."""
    before = set(problems(doc, template))
    return [problem for problem in problems(page, template) if problem not in before]


def _without_line(markdown: str, starting: str) -> str:
    lines = markdown.splitlines(keepends=True)
    kept = [line for line in lines if not line.startswith(starting)]
    assert len(kept) == len(lines) - 1, f"expected exactly one line starting {starting!r}"
    return "".join(kept)


def test_given_the_template_when_the_architecture_page_is_checked_then_it_names_every_resource(
    doc: str, template: dict[str, Any]
) -> None:
    # Given template.yaml and docs/architecture.md as committed
    # When the page is checked against the template
    found = problems(doc, template)

    # Then nothing is missing, misplaced or stale (each line says what to fix in the page)
    assert found == []


def test_given_the_page_when_its_rows_are_read_then_every_kind_of_resource_has_its_table(
    doc: str, template: dict[str, Any]
) -> None:
    # Given the Resources section
    rows = inventory(doc)

    # When its rows are gathered
    ids = {row.logical_id for row in rows}

    # Then functions, tables, queues, the bus, the bucket, the APIs and the alarms are all there
    assert {"ChatsFunction", "CampaignsTable", "SendSmsQueue", "SmsEventBus", "CampaignBucket"} <= ids
    assert {"HttpApi", "WebSocketApi", "FanoutDeadLetterAlarm", "CampaignProgressFunctionSmsOutcomes"} <= ids


def test_given_a_page_without_a_queue_row_when_checked_then_the_queue_is_reported(
    doc: str, template: dict[str, Any]
) -> None:
    # Given the page with the SendSmsQueue row removed
    page = _without_line(doc, "| `SendSmsQueue` |")

    # When it is checked
    found = _new_problems(page, doc, template)

    # Then the queue is named as missing
    assert found == [
        "SendSmsQueue (AWS::SQS::Queue): no row in the Resources section of docs/architecture.md"
    ]


def test_given_a_template_with_a_new_resource_when_checked_then_it_is_reported(
    doc: str, template: dict[str, Any]
) -> None:
    # Given a template that gained a topic the page does not know
    grown = {**template, "Resources": {**template["Resources"], "AlertsTopic": {"Type": "AWS::SNS::Topic"}}}

    # When the unchanged page is checked against it
    found = [problem for problem in problems(doc, grown) if problem not in problems(doc, template)]

    # Then the topic is reported
    assert found == ["AlertsTopic (AWS::SNS::Topic): no row in the Resources section of docs/architecture.md"]


def test_given_a_row_of_a_removed_resource_when_checked_then_the_stale_row_is_reported(
    doc: str, template: dict[str, Any]
) -> None:
    # Given a template without CursorSecret, and the page unchanged
    resources = {k: v for k, v in template["Resources"].items() if k != "CursorSecret"}

    # When the page is checked
    shrunk = {**template, "Resources": resources}
    found = [problem for problem in problems(doc, shrunk) if problem not in problems(doc, template)]

    # Then its row is reported as naming a resource that does not exist
    assert found == ["CursorSecret: a row in the Resources section, but no such resource in template.yaml"]


def test_given_a_route_missing_from_its_function_row_when_checked_then_the_route_is_reported(
    doc: str, template: dict[str, Any]
) -> None:
    # Given the ChatsFunction row without its search route
    row = next(line for line in doc.splitlines() if line.startswith("| `ChatsFunction` |"))
    page = doc.replace(row, row.replace(", `GET /v1/search`", ""))

    # When the page is checked
    found = _new_problems(page, doc, template)

    # Then the route is named
    assert found == ["ChatsFunction: its row does not name its trigger `GET /v1/search`"]


def test_given_a_resource_under_the_wrong_heading_when_checked_then_it_is_reported(
    doc: str, template: dict[str, Any]
) -> None:
    # Given the CampaignBucket row moved from the buckets' table to the end of the alarms' table
    row = next(line for line in doc.splitlines() if line.startswith("| `CampaignBucket` |"))
    alarm = next(line for line in doc.splitlines() if line.startswith("| `FanoutDeadLetterAlarm` |"))
    page = doc.replace(row + "\n", "").replace(alarm, alarm + "\n" + row)

    # When the page is checked
    found = _new_problems(page, doc, template)

    # Then the bucket is reported as misplaced
    assert found == [
        "CampaignBucket (AWS::S3::Bucket): its row is under a heading that does not name AWS::S3::Bucket"
    ]


def test_given_a_diagram_without_a_table_when_checked_then_the_table_is_reported(
    doc: str, template: dict[str, Any]
) -> None:
    # Given the diagram with SearchTable's node renamed away
    page = doc.replace(diagram(doc), diagram(doc).replace("SearchTable", "WordsTable"))

    # When the page is checked
    found = _new_problems(page, doc, template)

    # Then the table is named as missing from the diagram
    assert found == ["SearchTable (AWS::DynamoDB::Table): not in the Mermaid diagram"]


def test_given_the_requirements_when_technology_choices_are_read_then_every_library_is_there(
    doc: str,
) -> None:
    # Given every package the requirement files pin at the top level
    names = [
        name for path in REQUIREMENT_FILES for name in requirement_names(path.read_text(encoding="utf-8"))
    ]

    # When "Technology choices" is searched for each
    missing = undocumented_libraries(doc, names)

    # Then each one is named there, with what it is for and why
    assert {"pydantic", "moto", "aws-sam-cli"} <= set(names)
    assert missing == [], f"add these to docs/architecture.md, Technology choices: {missing}"


def test_given_a_new_requirement_when_checked_then_it_is_reported_as_undocumented(doc: str) -> None:
    # Given a requirements file that gained a library, with extras and a comment
    names = requirement_names(
        "-r base.txt\n# a comment\nhttpx[http2]==0.28.1  # client\nmypy-boto3-ses==1.0\n"
    )

    # When "Technology choices" is searched for them
    missing = undocumented_libraries(doc, names)

    # Then the new library is reported, and a stub package the mypy-boto3-* row covers is not
    assert names == ["httpx", "mypy-boto3-ses"]
    assert missing == ["httpx"]
