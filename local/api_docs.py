"""The API reference generated from the code: ``docs/openapi.json`` and ``docs/asyncapi.yaml``.

``make docs`` (``python -m local.api_docs``) writes both; ``--check`` only says whether the
committed files are what the code generates (tests/unit/test_api_docs.py and
tests/integration/test_api_docs.py fail otherwise, naming this command).

- ``docs/openapi.json``: the document ``GET /v1/openapi.json`` serves
  (``chatflow.api.openapi``), pretty-printed in the generator's order.
- ``docs/asyncapi.yaml``: an AsyncAPI 3.0 document of everything that is not HTTP: the
  WebSocket API's client and server frames (``chatflow.api.realtime``), the SendSms command
  on its queue (``chatflow.commands``) and the events on the SMS bus
  (``chatflow.api.event_models``). Every payload schema is generated from those pydantic
  models. The document is checked against the official AsyncAPI 3.0.0 JSON Schema
  (``local/schemas/``) before it is written.

``AsyncApiContract`` validates real frames, commands and events against the committed
document (the end-to-end tests' recorder, tests/e2e/conftest.py, uses it).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml  # type: ignore[import-untyped]  # no stubs in requirements/dev.txt
from jsonschema import Draft7Validator, Draft202012Validator  # type: ignore[import-untyped]
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

ROOT = Path(__file__).resolve().parent.parent
OPENAPI_FILE = ROOT / "docs" / "openapi.json"
ASYNCAPI_FILE = ROOT / "docs" / "asyncapi.yaml"
ASYNCAPI_SCHEMA_FILE = Path(__file__).resolve().parent / "schemas" / "asyncapi-3.0.0.json"
REGENERATE = "make docs (python -m local.api_docs)"

REALTIME, COMMANDS, EVENTS = "realtime", "sendSms", "smsEvents"
Kind = Literal["client frame", "server frame", "command", "event"]

# ---- OpenAPI ----------------------------------------------------------------------------


def openapi_text(served: str | None = None) -> str:
    """The committed form of the served document (``served``, else the code's own)."""
    if served is None:
        from chatflow.api.openapi import openapi_json

        served = openapi_json()
    return json.dumps(json.loads(served), indent=2, ensure_ascii=False) + "\n"


# ---- AsyncAPI ---------------------------------------------------------------------------


def _message(name: str, title: str, summary: str, schema: str) -> dict[str, Any]:
    return {
        "name": name,
        "title": title,
        "summary": summary,
        "payload": {"$ref": f"#/components/schemas/{schema}"},
    }


def _schemas(models: Sequence[tuple[type[BaseModel], JsonSchemaMode]]) -> dict[str, Any]:
    _, top = models_json_schema(models, ref_template="#/components/schemas/{model}")
    return dict(top.get("$defs", {}))


def asyncapi_document() -> dict[str, Any]:
    from chatflow.api import event_models, realtime
    from chatflow.commands import SYNONYMS, SendSmsCommand

    client_frames: list[tuple[str, type[BaseModel], str]] = [
        ("sendMessage", realtime.SendMessageFrame, "Send a message (the HTTP route's rules, idempotent)"),
        ("receipt", realtime.ReceiptFrame, "Move the caller's delivered or read marker forward"),
        ("typing", realtime.TypingFrame, "Tell the chat's other members the caller is typing"),
        ("ping", realtime.PingFrame, "Keep the connection alive (at least every 5 minutes); answered pong"),
    ]
    server_frames: list[tuple[str, type[BaseModel], str]] = [
        ("messageNew", realtime.MessageNewFrame, "message.new"),
        ("messageStatus", realtime.MessageStatusFrame, "message.status"),
        ("presence", realtime.PresenceFrame, "presence"),
        ("typingNotice", realtime.TypingNotice, "typing"),
        ("chatUpdated", realtime.ChatUpdatedFrame, "chat.updated"),
        ("error", realtime.ErrorFrame, "error"),
        ("pong", realtime.PongFrame, "pong"),
    ]
    schemas = _schemas(
        [(model, "validation") for _, model, _ in client_frames]
        + [(model, "serialization") for _, model, _ in server_frames]
        + [(SendSmsCommand, "validation")]
        + [(model, "validation") for model in event_models.EVENTS]
    )
    command = schemas["SendSmsCommand"]
    command["description"] = (
        "The body of a message on the SendSms queue (JSON). Exactly one of phoneNumber and iccid. "
        "Fields it does not know are ignored. Seed-shaped names are accepted as synonyms: "
        + ", ".join(f"{synonym} = {name}" for synonym, name in SYNONYMS.items())
        + "; a command with no commandId takes the SQS message id. A body that is not JSON or breaks "
        "this schema ends in one SmsRejected event and is never retried."
    )
    command["oneOf"] = [{"required": ["phoneNumber"]}, {"required": ["iccid"]}]  # the model's own check
    # The model requires commandId because the consumer fills in the SQS message id first.
    command["required"] = [field for field in command["required"] if field != "commandId"]

    realtime_messages: dict[str, Any] = {}
    for name, model, summary in client_frames:
        realtime_messages[name] = _message(name, f'{{"action": "{name}"}}', summary, model.__name__)
    for name, model, frame_type in server_frames:
        summary = " ".join((model.__doc__ or frame_type).split())
        realtime_messages[name] = _message(name, f'{{"type": "{frame_type}"}}', summary, model.__name__)
    event_messages = {
        model.__name__: _message(
            model.__name__,
            model.__name__,
            " ".join((schemas[f"{model.__name__}Detail"].get("description") or "").split()),
            model.__name__,
        )
        for model in event_models.EVENTS
    }

    def realtime_ref() -> dict[str, str]:
        return {"$ref": f"#/channels/{REALTIME}"}  # a new dict each time: no YAML anchors

    def refs(channel: str, names: Sequence[str]) -> list[dict[str, str]]:
        return [{"$ref": f"#/channels/{channel}/messages/{name}"} for name in names]

    operations: dict[str, Any] = {}
    for name, _, summary in client_frames:
        operation: dict[str, Any] = {
            "action": "receive",
            "channel": realtime_ref(),
            "summary": summary,
            "messages": refs(REALTIME, [name]),
        }
        if name == "ping":
            operation["reply"] = {"channel": realtime_ref(), "messages": refs(REALTIME, ["pong"])}
        else:
            operation["description"] = (
                "A refused frame is answered with an error frame; the socket stays open."
            )
        operations[f"receive{name[0].upper()}{name[1:]}"] = operation
    for name, _, _ in server_frames:
        if name == "pong":
            continue  # the ping operation's reply
        operations[f"send{name[0].upper()}{name[1:]}"] = {
            "action": "send",
            "channel": realtime_ref(),
            "summary": realtime_messages[name]["summary"],
            "messages": refs(REALTIME, [name]),
        }
    operations["receiveSendSms"] = {
        "action": "receive",
        "channel": {"$ref": f"#/channels/{COMMANDS}"},
        "summary": "Send one SMS through the provider: at-least-once, idempotent by commandId",
        "messages": refs(COMMANDS, ["SendSms"]),
    }
    operations["publishSmsEvents"] = {
        "action": "send",
        "channel": {"$ref": f"#/channels/{EVENTS}"},
        "summary": "Every valid command ends in one SmsSent, SmsFailed or SmsExpired; receipts follow",
        "messages": refs(EVENTS, list(event_messages)),
    }

    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "ChatFlow real-time and messaging API",
            "version": "1.0.0",
            "description": (
                "Everything of ChatFlow that is not HTTP (the HTTP API: docs/openapi.json): the WebSocket "
                "API's frames, the SendSms command producers put on the queue, and the events the SMS "
                "gateway publishes. Generated from the code by `make docs`; prose reference: docs/api.md. "
                "Operations are ChatFlow's: it receives client frames and commands, it sends server "
                "frames and events."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "localWebSocket": {
                "host": "127.0.0.1:3001",
                "pathname": "/dev",
                "protocol": "ws",
                "description": "`make run`'s WebSocket API (port: CHATFLOW_WS_PORT).",
            },
            "webSocket": {
                "host": "{apiId}.execute-api.{region}.amazonaws.com",
                "pathname": "/{stage}",
                "protocol": "wss",
                "description": "A deployed stack's WebSocket API: the stack output WebSocketUrl.",
                "variables": {
                    "apiId": {"description": "The WebSocket API's id"},
                    "region": {"default": "us-east-1"},
                    "stage": {"enum": ["dev", "prod"], "default": "dev"},
                },
            },
            "localAws": {
                "host": "127.0.0.1:4566",
                "protocol": "http",
                "description": "`make run`'s emulated AWS endpoint (SQS and EventBridge; CHATFLOW_AWS_PORT).",
            },
            "sqs": {
                "host": "sqs.{region}.amazonaws.com",
                "protocol": "sqs",
                "variables": {"region": {"default": "us-east-1"}},
            },
            "eventBridge": {
                "host": "events.{region}.amazonaws.com",
                "protocol": "https",
                "description": "Amazon EventBridge (rules on the stack's bus deliver the events).",
                "variables": {"region": {"default": "us-east-1"}},
            },
        },
        "channels": {
            REALTIME: {
                "address": "/",
                "title": "WebSocket API",
                "description": (
                    "Connect with ?token=<session token> (a missing or bad token is refused at the "
                    "handshake, 403). Client frames are routed by their action; every other frame is "
                    "answered with an error frame. The session is checked on every frame: once it is "
                    "signed out or expired, the next frame gets an unauthorized error frame and the "
                    "connection is closed."
                ),
                "servers": [{"$ref": "#/servers/localWebSocket"}, {"$ref": "#/servers/webSocket"}],
                "messages": realtime_messages,
                "bindings": {
                    "ws": {
                        "method": "GET",
                        "query": {
                            "type": "object",
                            "required": ["token"],
                            "properties": {
                                "token": {"type": "string", "description": "The token of POST /v1/sessions"}
                            },
                        },
                        "bindingVersion": "0.1.0",
                    }
                },
            },
            COMMANDS: {
                "address": None,
                "title": "SendSms queue",
                "description": "The SQS queue whose URL is the stack output SendSmsQueueUrl.",
                "servers": [{"$ref": "#/servers/localAws"}, {"$ref": "#/servers/sqs"}],
                "messages": {
                    "SendSms": _message(
                        "SendSms",
                        "SendSms command",
                        "One SMS to send, by phone number or ICCID",
                        "SendSmsCommand",
                    )
                },
            },
            EVENTS: {
                "address": None,
                "title": "SMS event bus",
                "description": (
                    "The EventBridge bus named by the stack output EventBusName; every event has "
                    "source chatflow.sms. Order one command's events by detail.sequence, not by time."
                ),
                "servers": [{"$ref": "#/servers/localAws"}, {"$ref": "#/servers/eventBridge"}],
                "messages": event_messages,
            },
        },
        "operations": operations,
        "components": {"schemas": dict(sorted(schemas.items()))},
    }


def asyncapi_text(document: Mapping[str, Any] | None = None) -> str:
    body: str = yaml.safe_dump(
        dict(document if document is not None else asyncapi_document()),
        sort_keys=False,
        allow_unicode=True,
        width=100,
    )
    return "# Generated by `make docs` (python -m local.api_docs) from the code: do not edit.\n" + body


@cache
def _asyncapi_validator() -> Draft7Validator:
    schema = json.loads(ASYNCAPI_SCHEMA_FILE.read_text(encoding="utf-8"))
    return Draft7Validator(schema)


def asyncapi_problems(document: Mapping[str, Any]) -> list[str]:
    """Where ``document`` breaks the AsyncAPI 3.0.0 JSON Schema (empty when it is valid)."""
    errors = sorted(_asyncapi_validator().iter_errors(document), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in errors]


# ---- validating real payloads -----------------------------------------------------------


class AsyncApiContract:
    """Validates frames, commands and events against an AsyncAPI document's payload schemas."""

    def __init__(self, document: Mapping[str, Any]) -> None:
        components = {"components": document["components"]}
        self._by_kind: dict[Kind, dict[str, Draft202012Validator]] = {
            "client frame": {},
            "server frame": {},
            "command": {},
            "event": {},
        }
        for channel_name, channel in document["channels"].items():
            for message in channel["messages"].values():
                ref = message["payload"]["$ref"]
                schema = document["components"]["schemas"][ref.rsplit("/", 1)[-1]]
                validator = Draft202012Validator({"$ref": ref, **components})
                properties = schema.get("properties", {})
                if channel_name == COMMANDS:
                    self._by_kind["command"]["SendSms"] = validator
                elif "detail-type" in properties:
                    self._by_kind["event"][properties["detail-type"]["const"]] = validator
                elif "action" in properties:
                    self._by_kind["client frame"][properties["action"]["const"]] = validator
                else:
                    self._by_kind["server frame"][properties["type"]["const"]] = validator

    @classmethod
    def committed(cls) -> AsyncApiContract:
        return cls(yaml.safe_load(ASYNCAPI_FILE.read_text(encoding="utf-8")))

    def names(self, kind: Kind) -> set[str]:
        return set(self._by_kind[kind])

    def name_of(self, kind: Kind, payload: Any) -> str | None:
        """The message ``payload`` says it is (its action, type or detail-type), if any."""
        if kind == "command":
            return "SendSms"
        key = {"client frame": "action", "server frame": "type", "event": "detail-type"}[kind]
        value = payload.get(key) if isinstance(payload, dict) else None
        return value if isinstance(value, str) else None

    def problems(self, kind: Kind, payload: Any) -> list[str]:
        """Why ``payload`` is not a valid ``kind`` of the document (empty when it is one)."""
        name = self.name_of(kind, payload)
        validator = self._by_kind[kind].get(name or "")
        if validator is None:
            return [
                f"no {kind} {name!r} in the AsyncAPI document (known: {', '.join(sorted(self.names(kind)))})"
            ]
        return [
            f"{kind} {name}: {'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}"
            for e in validator.iter_errors(payload)
        ]


# ---- command line -----------------------------------------------------------------------


def generated() -> dict[Path, str]:
    document = asyncapi_document()
    problems = asyncapi_problems(document)
    if problems:
        raise ValueError("the generated AsyncAPI document is not valid AsyncAPI 3.0:\n" + "\n".join(problems))
    return {OPENAPI_FILE: openapi_text(), ASYNCAPI_FILE: asyncapi_text(document)}


def stale(files: Mapping[Path, str]) -> list[Path]:
    """The files whose committed text differs from ``files``' (missing ones included)."""
    return [path for path, text in files.items() if not path.exists() or path.read_text("utf-8") != text]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m local.api_docs", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="only check that the committed files are current"
    )
    args = parser.parse_args(argv)
    files = generated()
    out_of_date = stale(files)
    if args.check:
        for path in out_of_date:
            print(f"{path.relative_to(ROOT)} is out of date: run {REGENERATE}", file=sys.stderr)
        return 1 if out_of_date else 0
    for path in out_of_date:
        path.write_text(files[path], encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    if not out_of_date:
        print("docs/openapi.json and docs/asyncapi.yaml are current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
