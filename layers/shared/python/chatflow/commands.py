"""The SendSms command (CONTRACT §4, §4a): the one model producers build and the consumer parses.

Producers (sign-in codes, SMS forwards, STOP/START/HELP replies, campaigns) build a
``SendSmsCommand`` (validated as the consumer would) and hand it to the ``SmsCommandSender``
port, which puts ``command.body()`` on the queue: the command is serialized in that one place.

A body that is not JSON or breaks the schema is rejected (``SmsRejected``, never
retried); fields the contract does not know are ignored, so producers can add some.
Seed-shaped producers may write ``PhoneNumber``, ``SmsText``, ``CommandId``, ``Iccid``,
``SenderId``, ``MessageType``, ``Metadata`` (and ``ValidUntil``) instead of the camelCase
names; a command without a command id takes the SQS message's id, so redeliveries of
that message are deduplicated (a producer's own resend is a new message, a new command).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from chatflow.domain.clock import to_iso
from chatflow.domain.phone import normalize_phone
from chatflow.domain.sms import OutgoingSms
from chatflow.errors import InvalidPhoneNumber

MAX_METADATA_ENTRIES = 20
# Seed 004's names (CONTRACT §4a) and the contract's own.
SYNONYMS = {
    "CommandId": "commandId",
    "PhoneNumber": "phoneNumber",
    "Iccid": "iccid",
    "SmsText": "text",
    "SenderId": "senderId",
    "MessageType": "messageType",
    "Metadata": "metadata",
    "ValidUntil": "validUntil",
}


class InvalidCommand(ValueError):
    """The body is not a valid SendSms command; the message says what is wrong."""


class SendSmsCommand(BaseModel):
    """The contract's fields, with their contract names (camelCase)."""

    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    commandId: Annotated[str, Field(min_length=1, max_length=128)]
    phoneNumber: str | None = None
    iccid: Annotated[str | None, Field(pattern=r"^\d{19,20}$")] = None
    text: Annotated[str, Field(min_length=1, max_length=1600)]
    senderId: Annotated[str | None, Field(min_length=1, max_length=20)] = None
    messageType: Literal["transactional", "promotional"] = "transactional"
    metadata: dict[str, str] = Field(default_factory=dict)
    validUntil: str | None = None

    @field_validator("phoneNumber")
    @classmethod
    def _e164(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return normalize_phone(value)
        except InvalidPhoneNumber as exc:
            raise ValueError(str(exc)) from exc

    @field_validator("metadata")
    @classmethod
    def _small(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > MAX_METADATA_ENTRIES:
            raise ValueError(f"at most {MAX_METADATA_ENTRIES} metadata entries")
        return value

    @field_validator("validUntil")
    @classmethod
    def _iso_utc(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError("must be an ISO-8601 date and time, such as 2026-12-03T10:00:00Z") from None
        if moment.tzinfo is None:
            raise ValueError("must say its time zone (Z for UTC), such as 2026-12-03T10:00:00Z")
        return to_iso(moment)

    @model_validator(mode="after")
    def _one_destination(self) -> SendSmsCommand:
        if (self.phoneNumber is None) == (self.iccid is None):
            raise ValueError("exactly one of phoneNumber and iccid is required")
        return self

    @classmethod
    def of(cls, sms: OutgoingSms) -> SendSmsCommand:
        """The command of a parsed ``sms`` (to put it on the queue again)."""
        return cls(
            commandId=sms.command_id,
            phoneNumber=sms.to if sms.to_type == "phone" else None,
            iccid=sms.to if sms.to_type == "iccid" else None,
            text=sms.text,
            senderId=sms.sender_id,
            messageType=sms.message_type,
            metadata=dict(sms.metadata),
            validUntil=to_iso(sms.valid_until.astimezone(UTC)) if sms.valid_until is not None else None,
        )

    def body(self) -> str:
        """The queue message's body: compact camelCase JSON, fields without a value left out."""
        return self.model_dump_json(exclude_none=True)

    def document(self) -> dict[str, Any]:
        """The body as a dict (what ``json.loads(command.body())`` gives)."""
        return self.model_dump(exclude_none=True)

    def to_sms(self) -> OutgoingSms:
        return OutgoingSms(
            command_id=self.commandId,
            to=self.phoneNumber or self.iccid or "",
            to_type="phone" if self.phoneNumber else "iccid",
            text=self.text,
            message_type=self.messageType,
            sender_id=self.senderId,
            metadata=dict(self.metadata),
            valid_until=datetime.fromisoformat(self.validUntil.replace("Z", "+00:00"))
            if self.validUntil
            else None,
        )


def parse_command(body: str, message_id: str | None = None) -> OutgoingSms:
    """The command in an SQS message body; ``InvalidCommand`` saying why when it is not one.

    ``message_id`` (the SQS message's) is the command id of a command that names none."""
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise InvalidCommand(f"the body is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise InvalidCommand("the body must be a JSON object")
    document = _canonical(document)
    if "commandId" not in document and message_id:
        document["commandId"] = message_id
    try:
        return SendSmsCommand.model_validate(document).to_sms()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'body'}: {error['msg']}" for error in exc.errors()
        )
        raise InvalidCommand(problems) from exc


def _canonical(document: dict[str, Any]) -> dict[str, Any]:
    """The document with seed-shaped names moved to the contract's; both forms of one field
    must agree."""
    canonical = dict(document)
    for synonym, name in SYNONYMS.items():
        if synonym not in canonical:
            continue
        value = canonical.pop(synonym)
        if name in canonical and canonical[name] != value:
            raise InvalidCommand(f"{synonym} and {name} are the same field with different values: send one")
        canonical[name] = value
    return canonical


def command_body(sms: OutgoingSms) -> str:
    """The command as the contract writes it (the queue's body when it is sent again)."""
    return SendSmsCommand.of(sms).body()
