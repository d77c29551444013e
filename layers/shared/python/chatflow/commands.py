"""The SendSms command as producers put it on the queue (CONTRACT §4), validated at the edge.

A body that is not JSON or breaks the schema is rejected (``SmsRejected``, never
retried); fields the contract does not know are ignored, so producers can add some.
"""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from chatflow.domain.phone import normalize_phone
from chatflow.errors import InvalidPhoneNumber
from chatflow.ports import OutgoingSms

MAX_METADATA_ENTRIES = 20


class InvalidCommand(ValueError):
    """The body is not a valid SendSms command; the message says what is wrong."""


class SendSmsCommand(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", strict=True)

    commandId: Annotated[str, Field(min_length=1, max_length=128)]
    phoneNumber: str | None = None
    iccid: Annotated[str | None, Field(pattern=r"^\d{19,20}$")] = None
    text: Annotated[str, Field(min_length=1, max_length=1600)]
    senderId: Annotated[str | None, Field(min_length=1, max_length=20)] = None
    messageType: Literal["transactional", "promotional"] = "transactional"
    metadata: dict[str, str] = Field(default_factory=dict)

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

    @model_validator(mode="after")
    def _one_destination(self) -> SendSmsCommand:
        if (self.phoneNumber is None) == (self.iccid is None):
            raise ValueError("exactly one of phoneNumber and iccid is required")
        return self

    def to_sms(self) -> OutgoingSms:
        return OutgoingSms(
            command_id=self.commandId,
            to=self.phoneNumber or self.iccid or "",
            to_type="phone" if self.phoneNumber else "iccid",
            text=self.text,
            message_type=self.messageType,
            sender_id=self.senderId,
            metadata=dict(self.metadata),
        )


def parse_command(body: str) -> OutgoingSms:
    """The command in an SQS message body; ``InvalidCommand`` saying why when it is not one."""
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise InvalidCommand(f"the body is not JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise InvalidCommand("the body must be a JSON object")
    try:
        return SendSmsCommand.model_validate(document).to_sms()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or 'body'}: {error['msg']}" for error in exc.errors()
        )
        raise InvalidCommand(problems) from exc
