"""Settings: one validated model per concern, read once from the environment at cold start.

Only the composition (``chatflow.composition``) reads them, from the environment it was
given at cold start; the domain never reads the environment.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

# What an intrinsic of template.yaml leaves when nothing resolved it: `sam local invoke` turns
# ``!Sub "${WebSocketApi.ApiEndpoint}/${Stage}"`` into ``$WebSocketApi.ApiEndpoint/dev``, or
# the raw ``${...}`` stays, or a ``!GetAtt`` becomes ``WebSocketApi.ApiEndpoint``.
_UNRESOLVED = re.compile(r"\$\{?[A-Za-z0-9]+\.[A-Za-z0-9.]+\}?|^[A-Z][A-Za-z0-9]+\.[A-Z][A-Za-z0-9.]+")
_WHAT_TO_SET = (
    "in the function's environment: template.yaml gives it once deployed, `make run` and "
    "`make invoke` resolve it against the local stack, and for `sam local invoke` pass "
    "`--env-vars events/env.json`"
)


class SettingsError(RuntimeError):
    """A setting is missing or unusable; raised where the setting is first needed, naming the
    variable, its value and what to set (the cold start itself does not fail on it)."""

    @classmethod
    def of(cls, model: type[BaseModel], error: ValidationError) -> SettingsError:
        problems = []
        for detail in error.errors(include_url=False):
            name = ".".join(str(part) for part in detail["loc"]) or model.__name__
            if detail["type"] == "missing":
                problems.append(f"{name} is not set")
                continue
            value = detail.get("input")
            unresolved = isinstance(value, str) and (value == "" or _UNRESOLVED.search(value))
            note = (
                " (an intrinsic of template.yaml that nothing resolved, as under `sam local invoke` "
                "without --env-vars)"
                if unresolved
                else ""
            )
            problems.append(f"{name}={value!r} is not usable: {detail['msg']}{note}")
        what = "set it" if len(problems) == 1 else "set each"
        return cls(f"{model.__name__}: {'; '.join(problems)}; {what} {_WHAT_TO_SET}.")


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class _EnvModel(BaseModel):
    # defer_build: a model's validator is built when it first validates, so a function pays
    # only for the settings it reads (building all of them cost ~10 ms of every cold start).
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True, defer_build=True)


class AwsSettings(_EnvModel):
    region: str = Field(validation_alias="AWS_REGION", min_length=1)


class TableSettings(_EnvModel):
    users_table: str = Field(validation_alias="USERS_TABLE", min_length=1)
    chats_table: str = Field(validation_alias="CHATS_TABLE", min_length=1)


class SendLimitSettings(_EnvModel):
    """Per-user send limits (CONTRACT §7): ``UserSendBurst`` messages at once, then
    ``UserSendRatePerSecond`` a second. The defaults are template.yaml's, so a function that
    sends without the variables (none should) limits as deployed."""

    user_send_rate_per_second: float = Field(
        default=5, gt=0, le=10000, validation_alias="USER_SEND_RATE_PER_SECOND"
    )
    user_send_burst: int = Field(default=20, ge=1, le=100000, validation_alias="USER_SEND_BURST")


class IdentitySettings(_EnvModel):
    # otp: a code sent by SMS signs in; phone: the number alone does (CONTRACT §1).
    auth_mode: Literal["otp", "phone"] = Field(validation_alias="AUTH_MODE")
    operator_phone_numbers: Annotated[list[str], BeforeValidator(_split_csv)] = Field(
        default_factory=list, validation_alias="OPERATOR_PHONE_NUMBERS"
    )
    session_ttl_days: int = Field(default=30, ge=1, le=365, validation_alias="SESSION_TTL_DAYS")


class SendSmsQueueSettings(_EnvModel):
    """Where producers drop SendSms commands; loaded only by those that send (``otp`` mode)."""

    send_sms_queue_url: str = Field(validation_alias="SEND_SMS_QUEUE_URL", min_length=1)


class CursorSettings(_EnvModel):
    cursor_secret_arn: str = Field(validation_alias="CURSOR_SECRET_ARN", min_length=1)


class SearchSettings(_EnvModel):
    """The message search index (written by ChatActivityFunction, read by ChatsFunction)."""

    search_table: str = Field(validation_alias="SEARCH_TABLE", min_length=1)


class SmsGatewaySettings(_EnvModel):
    sms_table: str = Field(validation_alias="SMS_TABLE", min_length=1)
    send_sms_queue_url: str = Field(validation_alias="SEND_SMS_QUEUE_URL", min_length=1)
    provider_base_url: str = Field(validation_alias="SMS_PROVIDER_BASE_URL", pattern=r"^https?://")
    provider_secret_arn: str = Field(validation_alias="SMS_PROVIDER_SECRET_ARN", min_length=1)
    max_attempts: int = Field(default=15, ge=1, le=30, validation_alias="SMS_MAX_ATTEMPTS")
    retry_base_seconds: float = Field(default=2.0, ge=1, le=60, validation_alias="SMS_RETRY_BASE_SECONDS")
    rate_per_second: int = Field(default=20, ge=1, le=10_000, validation_alias="SMS_RATE_PER_SECOND")
    concurrency: int = Field(default=10, ge=1, le=50, validation_alias="SMS_BATCH_CONCURRENCY")
    max_invocations: int = Field(default=5, ge=2, le=1000, validation_alias="SMS_MAX_CONCURRENCY")
    provider_timeout_seconds: float = Field(default=5.0, gt=0, le=20, validation_alias="SMS_PROVIDER_TIMEOUT")
    # Read for campaign control (pause, cancel, sendAt, quiet hours, ratePerSecond) of
    # campaign commands; without it they are sent as any other command.
    campaigns_table: str | None = Field(default=None, validation_alias="CAMPAIGNS_TABLE", min_length=1)


class SmsTableSettings(_EnvModel):
    """The SMS gateway's table: commands, rejections, opt-outs, the provider-wide rate."""

    sms_table: str = Field(validation_alias="SMS_TABLE", min_length=1)


class SmsEventsSettings(_EnvModel):
    sms_table: str = Field(validation_alias="SMS_TABLE", min_length=1)
    event_bus_name: str = Field(validation_alias="EVENT_BUS_NAME", min_length=1)


class SmsWebhookSettings(_EnvModel):
    sms_table: str = Field(validation_alias="SMS_TABLE", min_length=1)
    provider_secret_arn: str = Field(validation_alias="SMS_PROVIDER_SECRET_ARN", min_length=1)


class CampaignSettings(_EnvModel):
    campaigns_table: str = Field(validation_alias="CAMPAIGNS_TABLE", min_length=1)
    campaign_bucket: str = Field(validation_alias="CAMPAIGN_BUCKET", min_length=1)
    # The gateway's SmsRatePerSecond: a campaign's ratePerSecond must be below it.
    sms_rate_per_second: int | None = Field(default=None, ge=1, validation_alias="SMS_RATE_PER_SECOND")


class CampaignLoaderSettings(CampaignSettings):
    send_sms_queue_url: str = Field(validation_alias="SEND_SMS_QUEUE_URL", min_length=1)
    load_queue_url: str = Field(validation_alias="CAMPAIGN_LOAD_QUEUE_URL", min_length=1)
    # The SMS table, read for opt-outs: opted-out recipients are skipped when loaded.
    sms_table: str = Field(validation_alias="SMS_TABLE", min_length=1)
    # Rows one invocation handles before it hands over to the next (from its checkpoint);
    # also bounded by the invocation's remaining time.
    max_rows_per_invocation: int = Field(
        default=250_000, ge=100, le=5_000_000, validation_alias="LOADER_MAX_ROWS_PER_INVOCATION"
    )


class ConnectionsSettings(_EnvModel):
    """Open WebSocket connections and presence (ConnectionsTable)."""

    connections_table: str = Field(validation_alias="CONNECTIONS_TABLE", min_length=1)


class RealtimeSettings(ConnectionsSettings):
    # The stage's WebSocket URL (wss://…/stage); its @connections API is the same URL over https.
    websocket_endpoint: str = Field(validation_alias="WEBSOCKET_ENDPOINT", pattern=r"^(wss?|https?)://")


class ForwardingSettings(_EnvModel):
    """SMS forwarding to offline members: the gateway's queue, and its table for opt-outs."""

    send_sms_queue_url: str = Field(validation_alias="SEND_SMS_QUEUE_URL", min_length=1)
    sms_table: str = Field(validation_alias="SMS_TABLE", min_length=1)


class ForwardWaitSettings(_EnvModel):
    """The fan-out's SMS-forward waits: the queue of their jobs, and how long each lasts
    (``ForwardAfterSeconds``; SQS delays a message 900 s at most)."""

    forward_queue_url: str = Field(validation_alias="FORWARD_QUEUE_URL", min_length=1)
    forward_after_seconds: int = Field(default=60, ge=0, le=900, validation_alias="FORWARD_AFTER_SECONDS")
