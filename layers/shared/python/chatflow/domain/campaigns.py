"""SMS campaigns: entities, the operator's use cases, the recipients loader and progress rules.

A campaign is a template; uploads add recipients (ICCIDs with their variables). Each new
recipient becomes one SendSms command (promotional, ``metadata.campaignId``, command id
``cmp-<campaignId>-<iccid>`` so a redelivery never sends twice), and the gateway's events
move the recipient forward: queued → sent → delivered, or → failed | expired. A recipient
opted out when its row is loaded is ``skipped`` and never queued. Counts live on the
campaign and change in the same write as the recipient, so they always add up:
``queued + sent + failed + delivered + skipped + expired + cancelled == total``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from chatflow.domain.campaign_control import (
    CANCELLED_CODE,
    ControlState,
    QuietHours,
    SendControl,
    valid_zone,
    zones_problem,
)
from chatflow.domain.clock import Clock, to_iso
from chatflow.domain.pagination import CursorCodec, Page
from chatflow.domain.recipients_csv import (
    Header,
    Recipient,
    RowProblem,
    check_header,
    parse_row,
    read_records,
)
from chatflow.domain.sms import segments
from chatflow.domain.templates import MAX_TEXT, MessageTemplate, parse_template
from chatflow.errors import Conflict, FieldProblem, Forbidden, InvalidFile, NotFound, ValidationFailed

if TYPE_CHECKING:
    from chatflow.commands import SendSmsCommand
    from chatflow.ports import (
        CampaignRepository,
        OperatorCheck,
        OptOutRepository,
        RecipientFiles,
        SmsCommandSender,
    )

CampaignStatus = Literal["draft", "sending", "completed"]
# What the API shows: the stored lifecycle above, overridden by the operator's control
# (cancelled, then paused) and by ``sendAt`` while it is ahead (scheduled).
ShownStatus = Literal["draft", "scheduled", "sending", "paused", "cancelled", "completed"]
UploadStatus = Literal["pending", "processing", "accepted", "rejected"]
RecipientStatus = Literal["queued", "sent", "failed", "delivered", "skipped", "expired", "cancelled"]
RECIPIENT_STATUSES: tuple[RecipientStatus, ...] = (
    "queued",
    "sent",
    "failed",
    "delivered",
    "skipped",
    "expired",
    "cancelled",
)
# Where each status stands in the only order a recipient moves in: queued → sent → one of
# the ends. An event may only move a recipient to a later rank, so a late or duplicate
# event changes nothing and "delivered" is never undone by a SmsSent that arrives after it.
RANK: dict[RecipientStatus, int] = {
    "queued": 0,
    "sent": 1,
    "failed": 2,
    "delivered": 2,
    "skipped": 2,
    "expired": 2,
    "cancelled": 2,
}
DEFAULT_VALID_FOR = 86_400  # seconds a campaign's SMS may wait in the queue before it expires
MIN_VALID_FOR = 60
# The SendSms queue keeps a message 14 days: a command cannot wait longer than that anyway.
MAX_VALID_FOR = 14 * 86_400
MAX_ROW_ERRORS = 100
# sendAt: at most this far ahead (a year), and not in the past beyond clock skew.
MAX_SEND_AHEAD = timedelta(days=365)
SEND_AT_SKEW = timedelta(seconds=60)
TIMEZONE_COLUMN = "timezone"
CHUNK = 100  # recipients read, checked and written per step of the loader


@dataclass(frozen=True)
class Counts:
    total: int = 0
    queued: int = 0
    sent: int = 0
    failed: int = 0
    delivered: int = 0
    skipped: int = 0
    expired: int = 0
    cancelled: int = 0


@dataclass(frozen=True)
class Campaign:
    campaign_id: str
    name: str
    template: str
    variables: tuple[str, ...]
    sender_id: str | None
    status: CampaignStatus
    counts: Counts
    last_error: str | None
    created_at: datetime
    created_by: str
    valid_for: int = DEFAULT_VALID_FOR
    send_at: datetime | None = None
    rate_per_second: int | None = None
    quiet_hours: QuietHours | None = None
    control: ControlState = "none"
    paused_at: datetime | None = None
    estimate: Estimate = field(default_factory=lambda: Estimate())

    def shown_status(self, now: datetime) -> ShownStatus:
        """The status the API shows at ``now``: cancelled, else paused, else scheduled while
        ``sendAt`` is ahead (and the campaign not completed), else the stored one."""
        if self.control == "cancelled":
            return "cancelled"
        if self.control == "paused":
            return "paused"
        if self.send_at is not None and now < self.send_at and self.status != "completed":
            return "scheduled"
        return self.status

    def send_control(self) -> SendControl:
        return SendControl(
            campaign_id=self.campaign_id,
            state=self.control,
            paused_at=self.paused_at,
            send_at=self.send_at,
            rate_per_second=self.rate_per_second,
            quiet_hours=self.quiet_hours,
        )


@dataclass(frozen=True)
class Estimate:
    """What the loaded (queued) recipients' SMS amount to: messages, SMS parts, by encoding."""

    messages: int = 0
    segments: int = 0
    gsm7: int = 0
    ucs2: int = 0

    def plus(self, other: Estimate) -> Estimate:
        return Estimate(
            self.messages + other.messages,
            self.segments + other.segments,
            self.gsm7 + other.gsm7,
            self.ucs2 + other.ucs2,
        )


@dataclass(frozen=True)
class RowError:
    row: int
    message: str


@dataclass(frozen=True)
class Checkpoint:
    """Where a load stopped: the byte offset after the last handled record, and its row."""

    offset: int
    row: int
    columns: tuple[str, ...]


@dataclass(frozen=True)
class Upload:
    campaign_id: str
    upload_id: str
    key: str
    status: UploadStatus
    accepted: int = 0
    duplicates: int = 0
    invalid_rows: int = 0
    skipped: int = 0
    errors: tuple[RowError, ...] = ()
    error: str | None = None
    checkpoint: Checkpoint | None = None
    created_at: datetime | None = None


@dataclass(frozen=True)
class CampaignRecipient:
    campaign_id: str
    iccid: str
    status: RecipientStatus
    attempts: int = 0
    last_error: str | None = None
    provider_message_id: str | None = None
    updated_at: datetime | None = None
    upload_id: str = ""
    row: int = 0


@dataclass(frozen=True)
class Progress:
    """What one gateway event means for a recipient: from one of ``from_statuses`` to ``to``.

    ``from_statuses`` are always of a lower rank than ``to`` (see ``RANK``).
    """

    campaign_id: str
    iccid: str
    to: RecipientStatus
    from_statuses: tuple[RecipientStatus, ...]
    attempts: int | None = None
    error: str | None = None
    provider_message_id: str | None = None
    at: datetime | None = None


def command_id(campaign_id: str, iccid: str) -> str:
    return f"cmp-{campaign_id}-{iccid}"


def iccid_of(command: str, campaign_id: str) -> str | None:
    prefix = f"cmp-{campaign_id}-"
    return command[len(prefix) :] if command.startswith(prefix) else None


def progress_of(detail_type: str, detail: Mapping[str, Any], at: datetime) -> Progress | None:
    """The recipient change a gateway event means; None when the event is not a campaign's.

    Moves only forward (a duplicate or late event finds the recipient past ``from_statuses``
    and changes nothing): queued → sent | failed | expired | delivered (a receipt may
    overtake SmsSent); sent → delivered | failed (undelivered). A dead-lettered command's
    ``SmsFailed`` (``errorCode: dead_lettered``) fails its recipient like any other; the
    ``SmsFailed`` of a cancelled campaign's command (``errorCode: cancelled``) cancels it.
    """
    metadata = detail.get("metadata") or {}
    campaign_id = metadata.get("campaignId") if isinstance(metadata, Mapping) else None
    if not isinstance(campaign_id, str):
        return None
    iccid = detail.get("iccid") or iccid_of(str(detail.get("commandId", "")), campaign_id)
    if not isinstance(iccid, str) or not iccid:
        return None
    provider_id = detail.get("providerMessageId")
    attempts = detail.get("attempts")
    if detail_type == "SmsSent":
        return Progress(campaign_id, iccid, "sent", ("queued",), attempts, None, provider_id, at)
    if detail_type == "SmsFailed" and detail.get("errorCode") == CANCELLED_CODE:
        reason = f"cancelled: {detail.get('reason')}"
        return Progress(campaign_id, iccid, "cancelled", ("queued",), attempts, reason, None, at)
    if detail_type == "SmsFailed":
        reason = f"{detail.get('errorCode')}: {detail.get('reason')}"
        return Progress(campaign_id, iccid, "failed", ("queued",), attempts, reason, None, at)
    if detail_type == "SmsExpired":
        reason = f"expired: not sent by {detail.get('validUntil')}, the end of the campaign's validFor"
        return Progress(campaign_id, iccid, "expired", ("queued",), attempts, reason, None, at)
    if detail_type == "SmsDelivered":
        return Progress(campaign_id, iccid, "delivered", ("queued", "sent"), None, None, provider_id, at)
    if detail_type == "SmsUndelivered":
        reason = f"undelivered: the provider reported {detail.get('status')}"
        return Progress(campaign_id, iccid, "failed", ("queued", "sent"), None, reason, provider_id, at)
    return None


# ---- the operator's use cases -----------------------------------------------------------


class CampaignCancelled(Conflict):
    code = "campaign_cancelled"


class CampaignCompleted(Conflict):
    code = "campaign_completed"


@dataclass(frozen=True)
class Preview:
    """A template rendered for one recipient, and how it travels: its encoding, the SMS parts
    it is billed as, and its length in characters."""

    text: str
    encoding: str
    segments: int
    characters: int


def preview_message(template: str, variables: Mapping[str, str]) -> Preview:
    """``template`` rendered with ``variables`` as a campaign would send it to a recipient
    whose CSV row had those values. ``InvalidTemplate`` for a malformed template; a
    ``ValidationFailed`` naming the variables without a value, or saying by how much the
    text is over what one campaign SMS may be."""
    parsed = parse_template(template)
    missing = [name for name in parsed.variables if name not in variables]
    if missing:
        message = "no value for " + ", ".join(missing) + ": give each variable of the template a value"
        raise ValidationFailed(
            message, details=tuple(FieldProblem(f"variables.{n}", "missing") for n in missing)
        )
    text = parsed.render(variables)
    if len(text) > MAX_TEXT:
        message = f"the text is {len(text)} characters once rendered: a campaign SMS is at most {MAX_TEXT}"
        raise ValidationFailed(message, details=(FieldProblem("template", message),))
    parts = segments(text)
    return Preview(text=text, encoding=parts.encoding.value, segments=parts.count, characters=len(text))


class CampaignService:
    def __init__(
        self,
        *,
        campaigns: CampaignRepository,
        files: RecipientFiles,
        operators: OperatorCheck,
        cursors: CursorCodec,
        clock: Clock,
        upload_url_seconds: int = 900,
        gateway_rate: int | None = None,
    ) -> None:
        self._campaigns = campaigns
        self._files = files
        self._operators = operators
        self._cursors = cursors
        self._clock = clock
        self._upload_url_seconds = upload_url_seconds
        # The gateway's SmsRatePerSecond: a campaign's ratePerSecond must be below it.
        self._gateway_rate = gateway_rate

    def _require_operator(self, caller: str) -> None:
        if not self._operators.is_operator(caller):
            raise Forbidden("Campaigns are for operators: ask an administrator for the operator role.")

    def preview(self, caller: str, template: str, variables: Mapping[str, str]) -> Preview:
        self._require_operator(caller)
        return preview_message(template, variables)

    def create(
        self,
        caller: str,
        *,
        name: str,
        template: str,
        sender_id: str | None,
        valid_for: int = DEFAULT_VALID_FOR,
        send_at: datetime | None = None,
        rate_per_second: int | None = None,
        quiet_hours: QuietHours | None = None,
    ) -> Campaign:
        self._require_operator(caller)
        if not MIN_VALID_FOR <= valid_for <= MAX_VALID_FOR:
            message = (
                f"validFor is seconds an SMS may wait before it expires: "
                f"from {MIN_VALID_FOR} to {MAX_VALID_FOR} (14 days)"
            )
            raise ValidationFailed(message, details=(FieldProblem("validFor", message),))
        now = self._clock()
        if send_at is not None:
            if send_at.tzinfo is None:
                message = "sendAt must say its time zone (Z for UTC), such as 2026-12-24T09:00:00Z"
                raise ValidationFailed(message, details=(FieldProblem("sendAt", message),))
            if send_at < now - SEND_AT_SKEW or send_at > now + MAX_SEND_AHEAD:
                message = "sendAt must be in the future, at most a year ahead; leave it out to send at once"
                raise ValidationFailed(message, details=(FieldProblem("sendAt", message),))
        top = self._gateway_rate
        if rate_per_second is not None and top is not None and not 1 <= rate_per_second < top:
            message = (
                f"ratePerSecond must be from 1 to {top - 1}: below the gateway's "
                f"SmsRatePerSecond ({top}), which every sender shares"
            )
            raise ValidationFailed(message, details=(FieldProblem("ratePerSecond", message),))
        parsed = parse_template(template)
        campaign = Campaign(
            campaign_id=f"c_{uuid.uuid4().hex}",
            name=name,
            template=parsed.source,
            variables=parsed.variables,
            sender_id=sender_id,
            status="draft",
            counts=Counts(),
            last_error=None,
            created_at=self._clock(),
            created_by=caller,
            valid_for=valid_for,
            send_at=send_at,
            rate_per_second=rate_per_second,
            quiet_hours=quiet_hours,
        )
        self._campaigns.create(campaign)
        return campaign

    # ---- control: pause, resume, cancel ---------------------------------------------------

    def pause(self, caller: str, campaign_id: str) -> Campaign:
        """Paused: nothing more is sent, queued commands included, until resumed. Pausing a
        paused campaign changes nothing; a completed or cancelled one is ``409``."""
        campaign = self.get(caller, campaign_id)
        if campaign.control == "paused":
            return campaign
        changed = self._campaigns.set_control(campaign_id, "paused", now=self._clock())
        return changed if changed is not None else self._refused(campaign_id, "pause")

    def resume(self, caller: str, campaign_id: str) -> Campaign:
        """Sending again (or scheduled, while ``sendAt`` is ahead). Resuming a campaign that is
        not paused changes nothing; a cancelled one is ``409``, and so is a completed one."""
        campaign = self.get(caller, campaign_id)
        if campaign.control == "none" and campaign.status != "completed":
            return campaign
        changed = self._campaigns.set_control(campaign_id, "none", now=self._clock())
        return changed if changed is not None else self._refused(campaign_id, "resume")

    def cancel(self, caller: str, campaign_id: str) -> Campaign:
        """Cancelled, for good: each command still queued ends ``cancelled`` when the gateway
        reaches it (counted). Cancelling twice changes nothing; a completed campaign is ``409``."""
        campaign = self.get(caller, campaign_id)
        if campaign.control == "cancelled":
            return campaign
        changed = self._campaigns.set_control(campaign_id, "cancelled", now=self._clock())
        return changed if changed is not None else self._refused(campaign_id, "cancel")

    def _refused(self, campaign_id: str, action: str) -> Campaign:
        """The write's condition failed: say why from the campaign as it is now."""
        campaign = self._campaigns.get(campaign_id)
        if campaign is None:
            raise NotFound(f"No campaign {campaign_id}: list them with GET /v1/campaigns.")
        if campaign.control == "cancelled":
            raise CampaignCancelled(
                f"Campaign {campaign_id} is cancelled, for good: it cannot {action}. "
                "Create a new campaign to send it again."
            )
        if campaign.status == "completed" and campaign.control == "none":
            raise CampaignCompleted(
                f"Campaign {campaign_id} is completed: nothing is left to {action}. "
                "Upload more recipients to send again."
            )
        return campaign  # it changed meanwhile into what was asked (a concurrent same request)

    def estimate(self, caller: str, campaign_id: str) -> Estimate:
        """Messages and SMS parts of the recipients loaded so far (queued ones; skipped ones
        are never sent): one read of the campaign, whose counters the loader keeps."""
        return self.get(caller, campaign_id).estimate

    def get(self, caller: str, campaign_id: str) -> Campaign:
        self._require_operator(caller)
        campaign = self._campaigns.get(campaign_id)
        if campaign is None:
            raise NotFound(f"No campaign {campaign_id}: list them with GET /v1/campaigns.")
        return campaign

    def list(self, caller: str, *, limit: int, cursor: str | None) -> tuple[Page[Campaign], str | None]:
        self._require_operator(caller)
        page = self._campaigns.list_campaigns(limit=limit, position=self._cursors.decode("campaigns", cursor))
        return page, self._cursors.encode("campaigns", page.next_position)

    def create_upload(self, caller: str, campaign_id: str) -> tuple[Upload, str, int]:
        if self.get(caller, campaign_id).control == "cancelled":
            raise CampaignCancelled(
                f"Campaign {campaign_id} is cancelled: it takes no more recipients. Create a new campaign."
            )
        upload_id = f"u_{uuid.uuid4().hex}"
        upload = Upload(
            campaign_id=campaign_id,
            upload_id=upload_id,
            key=f"campaigns/{campaign_id}/{upload_id}.csv",
            status="pending",
            created_at=self._clock(),
        )
        self._campaigns.create_upload(upload)
        url = self._files.upload_url(upload.key, expires_in=self._upload_url_seconds)
        return upload, url, self._upload_url_seconds

    def get_upload(self, caller: str, campaign_id: str, upload_id: str) -> Upload:
        self.get(caller, campaign_id)
        upload = self._campaigns.get_upload(campaign_id, upload_id)
        if upload is None:
            raise NotFound(f"No upload {upload_id} in campaign {campaign_id}.")
        return upload

    def recipients(
        self, caller: str, campaign_id: str, *, status: str | None, limit: int, cursor: str | None
    ) -> tuple[Page[CampaignRecipient], str | None]:
        self.get(caller, campaign_id)
        if status is not None and status not in RECIPIENT_STATUSES:
            raise ValidationFailed(
                f"status must be one of {', '.join(RECIPIENT_STATUSES)}",
                details=(FieldProblem("status", f"must be one of {', '.join(RECIPIENT_STATUSES)}"),),
            )
        scope = f"recipients|{campaign_id}|{status or ''}"
        page = self._campaigns.list_recipients(
            campaign_id,
            status=status,
            limit=limit,
            position=self._cursors.decode(scope, cursor),
        )
        return page, self._cursors.encode(scope, page.next_position)


# ---- the loader -------------------------------------------------------------------------


@dataclass
class _Tally:
    accepted: int = 0
    duplicates: int = 0
    invalid: int = 0
    skipped: int = 0
    errors: list[RowError] = field(default_factory=list)

    def problem(self, row: int, message: str) -> None:
        self.invalid += 1
        if len(self.errors) < MAX_ROW_ERRORS:
            self.errors.append(RowError(row, message))


@dataclass(frozen=True)
class Loaded:
    """``done``: the upload ended (accepted or rejected). Else the load goes on in another
    invocation from the stored checkpoint, presenting ``token`` (the lease this invocation
    hands over). ``busy``: another load holds the campaign, or took this one's lease over
    when it ran out: try the job again later, without a token (it then finds the upload
    ended, or the campaign free and resumes from the checkpoint)."""

    upload: Upload | None
    done: bool
    busy: bool = False
    token: str | None = None


class CampaignLoader:
    """Reads an uploaded CSV in a stream and queues one SendSms command per new recipient.

    A recipient whose ICCID opted out (one batched read per chunk) is stored ``skipped``
    and gets no command. Each command carries ``validUntil``: the moment it is queued plus
    the campaign's ``validFor``.

    Crash-safe order per chunk: recipients are written, then their commands sent (command
    ids are idempotent), then the checkpoint and the counts saved in one write. After a
    crash the chunk is read again: recipients of this very row and upload are taken as
    this load's own (counted as stored, queued ones' commands sent again, which sends
    nothing twice; skipped ones stay skipped).

    One load at a time, fenced: each invocation claims the campaign with a fresh token
    (granted when the campaign is free, its lease ran out, or the job presents the token
    of the invocation that handed over), and each save of counts is conditional on that
    token. A duplicate job (S3 notifies at least once) finds the campaign busy instead of
    loading the same rows beside the first; an invocation whose lease ran out and was
    taken over adds no counts and stops, and the new holder resumes from the checkpoint.
    """

    def __init__(
        self,
        *,
        campaigns: CampaignRepository,
        files: RecipientFiles,
        commands: SmsCommandSender,
        opt_outs: OptOutRepository,
        clock: Clock,
        lease_seconds: float = 120.0,
    ) -> None:
        self._campaigns = campaigns
        self._files = files
        self._commands = commands
        self._opt_outs = opt_outs
        self._clock = clock
        self._lease_seconds = lease_seconds

    def _lease(self) -> datetime:
        return self._clock() + timedelta(seconds=self._lease_seconds)

    def load(
        self,
        campaign_id: str,
        upload_id: str,
        key: str,
        *,
        budget: Callable[[], bool],
        holding: str | None = None,
    ) -> Loaded:
        """Load (or resume) an upload while ``budget()`` says there is time left.

        ``holding``: the token a continuation carries (``Loaded.token`` of the invocation that
        handed over); a job without one waits while another load's lease runs.
        """
        campaign = self._campaigns.get(campaign_id)
        if campaign is None:
            return Loaded(None, done=True)
        token = uuid.uuid4().hex
        start = Upload(campaign_id, upload_id, key, "processing", created_at=self._clock())
        upload = self._campaigns.claim_upload(
            start, token=token, holding=holding, now=self._clock(), lease_until=self._lease()
        )
        if upload is None:
            return self._not_ours(campaign_id, upload_id)
        template = parse_template(campaign.template)
        try:
            return self._load(campaign, template, upload, budget, token)
        except InvalidFile as exc:
            rejected = replace(upload, status="rejected", error=exc.message)
            if not self._campaigns.finish_upload(rejected, token=token, added=0):
                return self._not_ours(campaign_id, upload_id)
            return Loaded(rejected, done=True)

    def _not_ours(self, campaign_id: str, upload_id: str) -> Loaded:
        """The campaign is another load's (or this one's lease was taken over): done when
        the upload ended, else busy (the job comes back later)."""
        stored = self._campaigns.get_upload(campaign_id, upload_id)
        ended = stored is not None and stored.status in ("accepted", "rejected")
        return Loaded(stored, done=ended, busy=not ended)

    def _load(
        self,
        campaign: Campaign,
        template: MessageTemplate,
        upload: Upload,
        budget: Callable[[], bool],
        token: str,
    ) -> Loaded:
        checkpoint = upload.checkpoint
        records = read_records(
            self._files.chunks(upload.key, start=checkpoint.offset if checkpoint else 0),
            start_offset=checkpoint.offset if checkpoint else 0,
            start_row=checkpoint.row if checkpoint else 0,
        )
        if checkpoint is None:
            first = next(records, None)
            if first is None:
                raise InvalidFile(
                    "The file is empty: upload a CSV whose first line is the header (iccid,...)."
                )
            header = check_header(first.cells, template.variables)
            checkpoint = Checkpoint(first.end_offset, first.row, header.columns)
        else:
            header = check_header(checkpoint.columns, template.variables)
        tally = _Tally(
            upload.accepted, upload.duplicates, upload.invalid_rows, upload.skipped, list(upload.errors)
        )
        seen_rows = checkpoint.row > 1
        for chunk in _chunks(records, CHUNK):
            seen_rows = True
            added, skipped, estimate = self._chunk(campaign, template, header, upload, chunk, tally)
            last = chunk[-1]
            checkpoint = Checkpoint(last.end_offset, last.row, header.columns)
            upload = self._with(upload, tally, checkpoint)
            saved = self._campaigns.save_progress(
                upload,
                token=token,
                added=added,
                skipped=skipped,
                lease_until=self._lease(),
                estimate=estimate,
            )
            if not saved:
                return self._not_ours(campaign.campaign_id, upload.upload_id)
            if not budget():
                return Loaded(upload, done=False, token=token)
        if not seen_rows:
            raise InvalidFile("The file has a header but no recipients: add one row per ICCID under it.")
        final = replace(self._with(upload, tally, checkpoint), status="accepted")
        if not self._campaigns.finish_upload(final, token=token, added=0):
            return self._not_ours(campaign.campaign_id, upload.upload_id)
        return Loaded(final, done=True)

    @staticmethod
    def _with(upload: Upload, tally: _Tally, checkpoint: Checkpoint) -> Upload:
        return replace(
            upload,
            accepted=tally.accepted,
            duplicates=tally.duplicates,
            invalid_rows=tally.invalid,
            skipped=tally.skipped,
            errors=tuple(tally.errors),
            checkpoint=checkpoint,
        )

    def _chunk(
        self,
        campaign: Campaign,
        template: MessageTemplate,
        header: Header,
        upload: Upload,
        records: Sequence[Any],
        tally: _Tally,
    ) -> tuple[int, int, Estimate]:
        """Write the chunk's new recipients and queue their commands: (queued, skipped, and
        what the queued ones' SMS amount to)."""
        candidates: dict[str, tuple[Recipient, str, str | None]] = {}
        now = self._clock()
        for record in records:
            parsed = parse_row(header, record, template.variables)
            if isinstance(parsed, RowProblem):
                tally.problem(parsed.row, parsed.message)
                continue
            zone = _timezone_of(header, record)
            problem = _zone_problem(campaign, parsed.iccid, zone, now)
            if problem is not None:
                tally.problem(parsed.row, problem)
                continue
            text = template.render(parsed.values)
            if len(text) > MAX_TEXT:
                tally.problem(
                    parsed.row, f"the message would be {len(text)} characters; the limit is {MAX_TEXT}"
                )
                continue
            if parsed.iccid in candidates:
                tally.duplicates += 1
                continue
            candidates[parsed.iccid] = (parsed, text, zone or None)
        existing = self._campaigns.existing(campaign.campaign_id, list(candidates))
        fresh = [iccid for iccid in candidates if iccid not in existing]
        opted_out = self._opt_outs.opted_out(fresh) if fresh else set()
        # Valid for validFor from when it may first be sent: queued now, or sendAt if later.
        starts = max(now, campaign.send_at) if campaign.send_at is not None else now
        valid_until = to_iso(starts + timedelta(seconds=campaign.valid_for))
        estimate = Estimate()
        new: list[CampaignRecipient] = []
        from chatflow.commands import SendSmsCommand  # on first use: not at cold start

        commands: list[SendSmsCommand] = []
        skipped = 0
        for iccid, (recipient, text, row_zone) in candidates.items():
            stored = existing.get(iccid)
            ours = stored is not None and stored.upload_id == upload.upload_id and stored.row == recipient.row
            if stored is not None and not ours:
                tally.duplicates += 1
                continue
            skip = iccid in opted_out if stored is None else stored.status == "skipped"
            if stored is None:
                new.append(
                    CampaignRecipient(
                        campaign.campaign_id,
                        iccid,
                        "skipped" if skip else "queued",
                        last_error="opted_out: this ICCID sent STOP before the campaign reached it"
                        if skip
                        else None,
                        updated_at=now,
                        upload_id=upload.upload_id,
                        row=recipient.row,
                    )
                )
            if skip:
                skipped += 1
                continue
            metadata = {"campaignId": campaign.campaign_id}
            if row_zone:
                metadata[TIMEZONE_COLUMN] = row_zone  # the gateway keeps quiet hours in it
            commands.append(
                SendSmsCommand(
                    commandId=command_id(campaign.campaign_id, iccid),
                    iccid=iccid,
                    text=text,
                    senderId=campaign.sender_id or None,
                    messageType="promotional",
                    metadata=metadata,
                    validUntil=valid_until,
                )
            )
            parts = segments(text)
            gsm7 = parts.encoding.value == "GSM-7"
            estimate = estimate.plus(Estimate(1, parts.count, int(gsm7), int(not gsm7)))
        self._campaigns.put_recipients(new)
        self._commands.send_all(commands)
        tally.accepted += len(commands)
        tally.skipped += skipped
        return len(commands), skipped, estimate


def _timezone_of(header: Header, record: Any) -> str:
    """The row's ``timezone`` cell, stripped; "" when the file has no such column."""
    if TIMEZONE_COLUMN not in header:
        return ""
    return str(record.cells[header.index(TIMEZONE_COLUMN)]).strip()


def _zone_problem(campaign: Campaign, iccid: str, zone: str, now: datetime) -> str | None:
    """Why the row's time zone makes it invalid: not an IANA name, or (for a campaign with
    quiet hours) no zone to keep them in."""
    if zone and not valid_zone(zone):
        shown = zone if len(zone) <= 40 else zone[:37] + "..."
        return f"timezone {shown!r} is not an IANA time zone name, such as Europe/London or America/New_York"
    if campaign.quiet_hours is None:
        return None
    return zones_problem(iccid, zone or None, campaign.quiet_hours, now)


def _chunks(records: Iterator[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
