"""The composition root: how every function's settings, clients and services are made.

Each ``functions/*/app.py`` makes one ``Composition`` at cold start and names the settings
it needs (``require``: they are read then; a missing or bad variable is logged at cold start
and fails, with ``SettingsError`` naming it and what to set, where it is first needed: a
function whose environment holds an unresolved intrinsic still imports). Everything
else is made on first use and then kept for the execution environment's life: boto3
clients (``chatflow.adapters.aws``), adapters, services. Imports happen inside the
factories, so a function loads only the modules of what it uses.

Tests give their own clients (``Composition(dynamodb=client)``), as Powertools'
``boto3_client`` arguments do, or call a factory and replace what it returns.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from datetime import timedelta
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import ValidationError

# boto3 (through the clients' module) is imported at cold start, in Lambda's init phase and
# its CPU boost, as before: every function that makes a Composition makes an AWS client.
from chatflow.adapters import aws
from chatflow.settings import (
    AwsSettings,
    CampaignLoaderSettings,
    CampaignSettings,
    ConnectionsSettings,
    CursorSettings,
    ForwardWaitSettings,
    IdentitySettings,
    RealtimeSettings,
    SearchSettings,
    SendLimitSettings,
    SendSmsQueueSettings,
    SettingsError,
    SmsEventsSettings,
    SmsGatewaySettings,
    SmsTableSettings,
    SmsWebhookSettings,
    TableSettings,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_s3.client import S3Client
    from mypy_boto3_sqs.client import SQSClient
    from pydantic import BaseModel

    from chatflow.adapters.campaign_store import DynamoCampaignRepository
    from chatflow.adapters.chat_store import DynamoChatRepository
    from chatflow.adapters.connection_store import DynamoConnectionRepository, DynamoForwardLimiter
    from chatflow.adapters.events import EventBridgePublisher
    from chatflow.adapters.identity_store import DynamoSessionRepository, DynamoUserRepository
    from chatflow.adapters.queues import SqsQueue
    from chatflow.adapters.reply_routes import DynamoReplyRoutes
    from chatflow.adapters.search_store import DynamoSearchIndex
    from chatflow.adapters.sms_commands import SqsSmsCommandSender
    from chatflow.adapters.sms_store import DynamoOptOutRepository, DynamoSmsCommandRepository
    from chatflow.api.websocket import WebSocketActions
    from chatflow.application.campaign_loading import CampaignLoadJobs
    from chatflow.application.connections import ConnectionService
    from chatflow.application.forwards import DelayedForwards
    from chatflow.application.projections import ChatProjections
    from chatflow.application.realtime import Forwarding, RealtimeService
    from chatflow.application.sms_outbox import SmsOutbox
    from chatflow.application.sms_sending import DeadLetters, SmsSending
    from chatflow.domain.campaigns import CampaignService
    from chatflow.domain.gateway import SmsGateway
    from chatflow.domain.identity import IdentityService
    from chatflow.domain.messaging import MessagingService
    from chatflow.domain.pagination import CursorCodec
    from chatflow.domain.search import SearchService
    from chatflow.domain.sms_replies import SmsReplies
    from chatflow.domain.webhooks import WebhookService

S = TypeVar("S", bound="BaseModel")
T = TypeVar("T")


def _once(make: Callable[[Composition], T]) -> Callable[[Composition], T]:
    """A factory whose product is made on the first call and returned by every later one."""
    name = make.__name__

    @wraps(make)
    def made(self: Composition) -> T:
        try:
            return self._made[name]  # type: ignore[no-any-return]
        except KeyError:
            pass
        with self._lock:  # the SendSms consumer's threads may ask at once
            if name not in self._made:
                self._made[name] = make(self)
            return self._made[name]  # type: ignore[no-any-return]

    return made


class Composition:
    """One execution environment's settings, clients and services."""

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        dynamodb: DynamoDBClient | None = None,
        s3: S3Client | None = None,
        sqs: SQSClient | None = None,
    ) -> None:
        # The environment as it is at cold start: handlers may run beside another
        # function's (local runs), long after it was read.
        self._environ = dict(os.environ if environ is None else environ)
        self._clients: dict[str, Any] = {"dynamodb": dynamodb, "s3": s3, "sqs": sqs}
        self._settings: dict[type[BaseModel], BaseModel] = {}
        self._unusable: dict[type[BaseModel], SettingsError] = {}
        self._made: dict[str, Any] = {}
        self._lock = threading.RLock()

    # ---- settings -----------------------------------------------------------------------

    def require(self, *models: type[BaseModel]) -> Composition:
        """Read these settings now (cold start). A missing or bad variable is logged here and
        raised as ``SettingsError`` by the first ``settings()`` that needs it, not at import."""
        for model in models:
            try:
                self.settings(model)
            except SettingsError as exc:
                logging.getLogger(__name__).warning("%s", exc)
        return self

    def settings(self, model: type[S]) -> S:
        if model in self._unusable:
            raise self._unusable[model]
        if model not in self._settings:
            try:
                self._settings[model] = model.model_validate(self._environ)
            except ValidationError as exc:
                self._unusable[model] = SettingsError.of(model, exc)
                raise self._unusable[model] from None
        found = self._settings[model]
        assert isinstance(found, model)
        return found

    def provide(self, factory: str, made: object) -> None:
        """Have ``factory`` return ``made`` from now on (tests replace an adapter this way)."""
        if not callable(getattr(self, factory, None)):
            raise AttributeError(f"no factory named {factory}")
        with self._lock:
            self._made[factory] = made

    @property
    def region(self) -> str:
        return self.settings(AwsSettings).region

    # ---- clients: made once per execution environment, on first use ------------------

    def dynamodb(self) -> DynamoDBClient:
        client: DynamoDBClient = self._clients["dynamodb"] or aws.dynamodb(self.region)
        return client

    def s3(self) -> S3Client:
        client: S3Client = self._clients["s3"] or aws.s3(self.region)
        return client

    def sqs(self) -> SQSClient:
        client: SQSClient = self._clients["sqs"] or aws.sqs(self.region)
        return client

    def secret(self, secret_id: str) -> bytes:
        return aws.read_secret(self.region, secret_id)

    def json_secret(self, secret_id: str) -> dict[str, str]:
        return aws.read_json_secret(self.region, secret_id)

    # ---- repositories ---------------------------------------------------------------------

    @_once
    def cursors(self) -> CursorCodec:
        from chatflow.domain.pagination import CursorCodec

        return CursorCodec(self.secret(self.settings(CursorSettings).cursor_secret_arn))

    @_once
    def users(self) -> DynamoUserRepository:
        from chatflow.adapters.identity_store import DynamoUserRepository

        return DynamoUserRepository(self.settings(TableSettings).users_table, self.dynamodb())

    @_once
    def sessions(self) -> DynamoSessionRepository:
        from chatflow.adapters.identity_store import DynamoSessionRepository

        return DynamoSessionRepository(self.settings(TableSettings).users_table, self.dynamodb())

    @_once
    def chats(self) -> DynamoChatRepository:
        from chatflow.adapters.chat_store import DynamoChatRepository

        return DynamoChatRepository(self.settings(TableSettings).chats_table, self.dynamodb())

    @_once
    def search_index(self) -> DynamoSearchIndex:
        from chatflow.adapters.search_store import DynamoSearchIndex

        return DynamoSearchIndex(self.settings(SearchSettings).search_table, self.dynamodb())

    @_once
    def connections(self) -> DynamoConnectionRepository:
        from chatflow.adapters.connection_store import DynamoConnectionRepository

        table = self.settings(ConnectionsSettings).connections_table
        return DynamoConnectionRepository(table, self.dynamodb())

    @_once
    def campaign_repository(self) -> DynamoCampaignRepository:
        from chatflow.adapters.campaign_store import DynamoCampaignRepository

        return DynamoCampaignRepository(self.settings(CampaignSettings).campaigns_table, self.dynamodb())

    @_once
    def sms_commands(self) -> DynamoSmsCommandRepository:
        from chatflow.adapters.sms_store import DynamoSmsCommandRepository

        return DynamoSmsCommandRepository(self.settings(SmsTableSettings).sms_table, self.dynamodb())

    @_once
    def opt_outs(self) -> DynamoOptOutRepository:
        from chatflow.adapters.sms_store import DynamoOptOutRepository

        return DynamoOptOutRepository(self.settings(SmsTableSettings).sms_table, self.dynamodb())

    @_once
    def event_publisher(self) -> EventBridgePublisher:
        from chatflow.adapters.events import EventBridgePublisher

        return EventBridgePublisher(self.settings(SmsEventsSettings).event_bus_name)

    @_once
    def send_sms_queue(self) -> SqsSmsCommandSender:
        """The SMS gateway's queue, for every producer of SendSms commands; its client is the
        one given, else made on the first send."""
        from chatflow.adapters.sms_commands import SqsSmsCommandSender

        url = self.settings(SendSmsQueueSettings).send_sms_queue_url
        return SqsSmsCommandSender(url, region=self.region, client=self._clients["sqs"])

    def _queue(self, url: str) -> SqsQueue:
        from chatflow.adapters.queues import SqsQueue

        return SqsQueue(url, self.sqs)

    # ---- identity -------------------------------------------------------------------------

    @_once
    def authentication(self) -> IdentityService:
        """Sessions only, for the authorizer: it signs nobody in and reads no chats."""
        return self._identity(signs_in=False)

    @_once
    def identity(self) -> IdentityService:
        """Sign-in, sessions and profiles; ``otp`` mode sends codes through the SMS queue."""
        return self._identity(signs_in=True)

    def _identity(self, *, signs_in: bool) -> IdentityService:
        from chatflow.adapters.identity_store import DynamoVerificationRepository
        from chatflow.domain.clock import utc_now
        from chatflow.domain.identity import IdentityService

        identity = self.settings(IdentitySettings)
        otp = signs_in and identity.auth_mode == "otp"
        return IdentityService(
            users=self.users(),
            sessions=self.sessions(),
            clock=utc_now,
            session_ttl=timedelta(days=identity.session_ttl_days),
            operators=frozenset(identity.operator_phone_numbers),
            chats=self.chats() if signs_in else None,
            auth_mode=identity.auth_mode if signs_in else "phone",
            verifications=(
                DynamoVerificationRepository(self.settings(TableSettings).users_table, self.dynamodb())
                if otp
                else None
            ),
            sms=self.send_sms_queue() if otp else None,
        )

    # ---- chats ----------------------------------------------------------------------------

    @_once
    def messaging(self) -> MessagingService:
        import time

        from chatflow.domain.clock import utc_now
        from chatflow.domain.messaging import MessagingService
        from chatflow.domain.send_limit import SendLimit

        limits = self.settings(SendLimitSettings)
        return MessagingService(
            chats=self.chats(),
            users=self.users(),
            cursors=self.cursors(),
            clock=utc_now,
            sleep=time.sleep,
            send_limit=SendLimit(limits.user_send_rate_per_second, limits.user_send_burst),
        )

    @_once
    def searching(self) -> SearchService:
        from chatflow.domain.search import SearchService

        return SearchService(chats=self.chats(), index=self.search_index(), cursors=self.cursors())

    # ---- real time ------------------------------------------------------------------------

    def _realtime(self, *, forwarding: bool) -> RealtimeService:
        from chatflow.adapters.notifier import ApiGatewayNotifier, management_client
        from chatflow.api import realtime as frames
        from chatflow.application.realtime import RealtimeService
        from chatflow.domain.clock import utc_now

        settings = self.settings(RealtimeSettings)
        return RealtimeService(
            connections=self.connections(),
            notifier=ApiGatewayNotifier(management_client(self.region, settings.websocket_endpoint)),
            frames=frames,
            chats=self.chats(),
            clock=utc_now,
            forwarding=self._forward_waits() if forwarding else None,
        )

    def _forward_waits(self) -> Forwarding:
        from chatflow.adapters.forward_jobs import SqsForwardScheduler
        from chatflow.application.realtime import Forwarding

        waits = self.settings(ForwardWaitSettings)
        return Forwarding(
            waits=SqsForwardScheduler(
                waits.forward_queue_url, region=self.region, client=self._clients["sqs"]
            ),
            limiter=self.forward_limiter(),
            after=timedelta(seconds=waits.forward_after_seconds),
        )

    @_once
    def forward_limiter(self) -> DynamoForwardLimiter:
        from chatflow.adapters.connection_store import DynamoForwardLimiter

        return DynamoForwardLimiter(self.settings(ConnectionsSettings).connections_table, self.dynamodb())

    @_once
    def realtime(self) -> RealtimeService:
        """Frames to connected clients (WebSocket routes): no SMS forwarding."""
        return self._realtime(forwarding=False)

    @_once
    def fanout(self) -> RealtimeService:
        """The stream fan-out: frames, and SMS-forward waits for offline members."""
        return self._realtime(forwarding=True)

    @_once
    def delayed_forwards(self) -> DelayedForwards:
        """The end of each SMS-forward wait (ForwardsFunction): one digest SMS, or nothing."""
        from chatflow.application.forwards import DelayedForwards
        from chatflow.domain.clock import utc_now

        return DelayedForwards(
            chats=self.chats(),
            connections=self.connections(),
            opt_outs=self.opt_outs(),
            limiter=self.forward_limiter(),
            sender=self.send_sms_queue(),
            clock=utc_now,
        )

    @_once
    def websocket_actions(self) -> WebSocketActions:
        from chatflow.api.websocket import WebSocketActions
        from chatflow.domain.clock import utc_now

        return WebSocketActions(
            realtime=self.realtime, messaging=self.messaging, sessions=self.sessions, clock=utc_now
        )

    @_once
    def websocket_connections(self) -> ConnectionService:
        from chatflow.application.connections import ConnectionService
        from chatflow.domain.clock import utc_now

        return ConnectionService(connections=self.connections(), clock=utc_now)

    @_once
    def chat_projections(self) -> ChatProjections:
        from chatflow.application.projections import ChatProjections

        return ChatProjections(inboxes=self.chats, index=self.search_index)

    # ---- SMS gateway ----------------------------------------------------------------------

    @_once
    def sms_gateway(self) -> SmsGateway:
        from chatflow.adapters.campaign_store import DynamoCampaignControls
        from chatflow.adapters.sms_provider import HttpSmsProvider
        from chatflow.adapters.sms_store import DynamoRateLimiter
        from chatflow.domain.clock import utc_now
        from chatflow.domain.gateway import SmsGateway
        from chatflow.domain.sms import RetryPolicy

        sms = self.settings(SmsGatewaySettings)
        provider = HttpSmsProvider(
            sms.provider_base_url,
            lambda: self.json_secret(sms.provider_secret_arn)["apiKey"],
            timeout_seconds=sms.provider_timeout_seconds,
        )
        return SmsGateway(
            provider=provider,
            commands=self.sms_commands(),
            opt_outs=self.opt_outs(),
            rate=DynamoRateLimiter(sms.sms_table, self.dynamodb(), sms.rate_per_second),
            policy=RetryPolicy(max_attempts=sms.max_attempts, base_seconds=sms.retry_base_seconds),
            clock=utc_now,
            in_flight=sms.concurrency * sms.max_invocations,
            campaigns=(
                DynamoCampaignControls(sms.campaigns_table, sms.sms_table, self.dynamodb())
                if sms.campaigns_table
                else None
            ),
        )

    @_once
    def sms_sending(self) -> SmsSending:
        from chatflow.application.sms_sending import SmsSending
        from chatflow.domain.clock import utc_now

        return SmsSending(
            gateway=self.sms_gateway,
            commands=self.sms_commands,
            queue=self._queue(self.settings(SmsGatewaySettings).send_sms_queue_url),
            clock=utc_now,
        )

    @_once
    def dead_letters(self) -> DeadLetters:
        from chatflow.application.sms_sending import DeadLetters
        from chatflow.domain.clock import utc_now

        return DeadLetters(commands=self.sms_commands, clock=utc_now)

    @_once
    def sms_outbox(self) -> SmsOutbox:
        from chatflow.application.sms_outbox import SmsOutbox

        return SmsOutbox(publisher=self.event_publisher)

    @_once
    def webhooks(self) -> WebhookService:
        from chatflow.domain.clock import utc_now
        from chatflow.domain.webhooks import WebhookService

        return WebhookService(
            commands=self.sms_commands(),
            opt_outs=self.opt_outs(),
            replies=self.send_sms_queue(),
            clock=utc_now,
            conversations=self.sms_replies(),
        )

    # ---- replies by SMS -------------------------------------------------------------------

    @_once
    def reply_routes(self) -> DynamoReplyRoutes:
        from chatflow.adapters.reply_routes import DynamoReplyRoutes

        return DynamoReplyRoutes(self.settings(ConnectionsSettings).connections_table, self.dynamodb())

    @_once
    def sms_replies(self) -> SmsReplies:
        """Where a number's SMS replies go (recorded from SmsSent), and posting them; the chat
        side (``messaging``, with its cursor secret) is made on the first reply."""
        from chatflow.domain.clock import utc_now
        from chatflow.domain.sms_replies import SmsReplies

        return SmsReplies(routes=self.reply_routes(), messaging=self.messaging, clock=utc_now)

    @_once
    def webhook_secret(self) -> str:
        return self.json_secret(self.settings(SmsWebhookSettings).provider_secret_arn)["webhookSecret"]

    # ---- campaigns ------------------------------------------------------------------------

    @_once
    def campaigns(self) -> CampaignService:
        from chatflow.adapters.campaign_store import S3RecipientFiles
        from chatflow.domain.campaigns import CampaignService
        from chatflow.domain.clock import utc_now
        from chatflow.domain.operators import OperatorDirectory

        operators = frozenset(self.settings(IdentitySettings).operator_phone_numbers)
        return CampaignService(
            campaigns=self.campaign_repository(),
            files=S3RecipientFiles(self.settings(CampaignSettings).campaign_bucket, self.s3()),
            operators=OperatorDirectory(self.users(), operators),
            cursors=self.cursors(),
            clock=utc_now,
            gateway_rate=self.settings(CampaignSettings).sms_rate_per_second,
        )

    @_once
    def campaign_loading(self) -> CampaignLoadJobs:
        from chatflow.adapters.campaign_store import S3RecipientFiles
        from chatflow.application.campaign_loading import CampaignLoadJobs
        from chatflow.domain.campaigns import CampaignLoader
        from chatflow.domain.clock import utc_now

        settings = self.settings(CampaignLoaderSettings)
        loader = CampaignLoader(
            campaigns=self.campaign_repository(),
            files=S3RecipientFiles(settings.campaign_bucket, self.s3()),
            commands=self.send_sms_queue(),
            opt_outs=self.opt_outs(),
            clock=utc_now,
        )
        return CampaignLoadJobs(
            loader=loader,
            queue=self._queue(settings.load_queue_url),
            max_rows=settings.max_rows_per_invocation,
        )
