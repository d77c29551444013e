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
from chatflow.errors import FieldProblem, Forbidden, InvalidFile, NotFound, ValidationFailed

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
    ``SmsFailed`` (``errorCode: dead_lettered``) fails its recipient like any other.
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
    ) -> None:
        self._campaigns = campaigns
        self._files = files
        self._operators = operators
        self._cursors = cursors
        self._clock = clock
        self._upload_url_seconds = upload_url_seconds

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
    ) -> Campaign:
        self._require_operator(caller)
        if not MIN_VALID_FOR <= valid_for <= MAX_VALID_FOR:
            message = (
                f"validFor is seconds an SMS may wait before it expires: "
                f"from {MIN_VALID_FOR} to {MAX_VALID_FOR} (14 days)"
            )
            raise ValidationFailed(message, details=(FieldProblem("validFor", message),))
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
        )
        self._campaigns.create(campaign)
        return campaign

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
        self.get(caller, campaign_id)
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
            added, skipped = self._chunk(campaign, template, header, upload, chunk, tally)
            last = chunk[-1]
            checkpoint = Checkpoint(last.end_offset, last.row, header.columns)
            upload = self._with(upload, tally, checkpoint)
            saved = self._campaigns.save_progress(
                upload, token=token, added=added, skipped=skipped, lease_until=self._lease()
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
    ) -> tuple[int, int]:
        """Write the chunk's new recipients and queue their commands: (queued, skipped)."""
        candidates: dict[str, tuple[Recipient, str]] = {}
        for record in records:
            parsed = parse_row(header, record, template.variables)
            if isinstance(parsed, RowProblem):
                tally.problem(parsed.row, parsed.message)
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
            candidates[parsed.iccid] = (parsed, text)
        existing = self._campaigns.existing(campaign.campaign_id, list(candidates))
        fresh = [iccid for iccid in candidates if iccid not in existing]
        opted_out = self._opt_outs.opted_out(fresh) if fresh else set()
        now = self._clock()
        valid_until = to_iso(now + timedelta(seconds=campaign.valid_for))
        new: list[CampaignRecipient] = []
        from chatflow.commands import SendSmsCommand  # on first use: not at cold start

        commands: list[SendSmsCommand] = []
        skipped = 0
        for iccid, (recipient, text) in candidates.items():
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
            commands.append(
                SendSmsCommand(
                    commandId=command_id(campaign.campaign_id, iccid),
                    iccid=iccid,
                    text=text,
                    senderId=campaign.sender_id or None,
                    messageType="promotional",
                    metadata={"campaignId": campaign.campaign_id},
                    validUntil=valid_until,
                )
            )
        self._campaigns.put_recipients(new)
        self._commands.send_all(commands)
        tally.accepted += len(commands)
        tally.skipped += skipped
        return len(commands), skipped


def _chunks(records: Iterator[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for record in records:
        chunk.append(record)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
