"""``chatflow campaign`` (also ``chatflow campaigns``): SMS campaigns through the API (CONTRACT §5,
§5a, operator role): create, preview, upload and follow, pause, resume, cancel, estimate."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any
from urllib.parse import quote

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from chatflow_cli.api import PAGE_LIMIT_MAX, ApiClient
from chatflow_cli.errors import ApiError, CliError
from chatflow_cli.output import count, text
from chatflow_cli.runtime import runtime
from chatflow_cli.transport import Http, s3_error

# Replaced by tests (a Ctrl-C while waiting).
sleep = time.sleep
ROW_ERRORS_SHOWN = 10

app = typer.Typer(help="SMS campaigns (operator role).", no_args_is_help=True)


class RecipientStatus(StrEnum):
    queued = "queued"
    sent = "sent"
    failed = "failed"
    delivered = "delivered"
    skipped = "skipped"
    expired = "expired"
    cancelled = "cancelled"


# Every recipient is in exactly one of these; they add up to the campaign's total.
STATUSES = ("queued", "sent", "failed", "delivered", "skipped", "expired", "cancelled")
# The ones a recipient leaves queued for (sent is on its way to delivered or failed).
DONE = ("sent", "failed", "delivered", "skipped", "expired", "cancelled")


Limit = Annotated[int, typer.Option("--limit", min=1, max=PAGE_LIMIT_MAX, help="Items per page (1-100).")]
FollowAll = Annotated[bool, typer.Option("--all", help="Every page (follows nextCursor).")]
Interval = Annotated[float, typer.Option("--interval", min=0.0, help="Seconds between two status checks.")]


def _path(campaign_id: str, *rest: str) -> str:
    return "/".join(["/v1/campaigns", quote(campaign_id, safe=""), *(quote(p, safe="") for p in rest)])


@contextmanager
def _known_campaign(campaign_id: str) -> Iterator[None]:
    """A campaign id the API does not know: said with the CLI's way to find ids, not the API's route."""
    try:
        yield
    except ApiError as exc:
        if exc.status != 404:
            raise
        raise CliError(
            f"no campaign {campaign_id}: `chatflow campaign list` shows the campaigns and their ids"
        ) from None


# ---- create, list, status ---------------------------------------------------------------------


@app.command("create")
def create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="The campaign's name.")],
    template: Annotated[str, typer.Option("--template", help="The text, with {{variables}} from the CSV.")],
    sender_id: Annotated[str | None, typer.Option("--sender-id", help="Sender shown to recipients.")] = None,
    valid_for: Annotated[
        int | None,
        typer.Option(
            "--valid-for",
            help="Seconds each SMS may wait to be sent once queued (60-1209600, default 86400).",
        ),
    ] = None,
    send_at: Annotated[
        str | None,
        typer.Option("--send-at", help="Send nothing before this ISO-8601 time, e.g. 2026-12-24T09:00:00Z."),
    ] = None,
    rate: Annotated[
        int | None,
        typer.Option("--rate", min=1, help="At most this many SMS per second (below the gateway's rate)."),
    ] = None,
    quiet_hours: Annotated[
        str | None,
        typer.Option(
            "--quiet-hours",
            help="START-END in each recipient's local time, e.g. 21:00-08:00: sends wait for its end.",
        ),
    ] = None,
) -> None:
    """Create a campaign (draft, or scheduled with --send-at) and print its id and template variables."""
    rt = runtime(ctx)
    body: dict[str, Any] = {"name": name, "template": template}
    if sender_id is not None:
        body["senderId"] = sender_id
    if valid_for is not None:
        body["validFor"] = valid_for
    if send_at is not None:
        body["sendAt"] = send_at
    if rate is not None:
        body["ratePerSecond"] = rate
    if quiet_hours is not None:
        start, sep, end = quiet_hours.partition("-")
        if not sep:
            raise CliError(f"--quiet-hours {quiet_hours!r}: write it as START-END, e.g. 21:00-08:00")
        body["quietHours"] = {"start": start.strip(), "end": end.strip()}
    campaign = rt.api.call_object("POST", "/v1/campaigns", body)
    rt.out.print(f"campaign {text(campaign.get('campaignId'))} created ({text(campaign.get('status'))})")
    rt.out.print(f"variables: {text(campaign.get('variables'))}")
    rt.out.print(f"valid for: {text(campaign.get('validFor'))} s")
    if campaign.get("sendAt"):
        rt.out.print(f"sends from: {text(campaign.get('sendAt'))}")
    if campaign.get("ratePerSecond"):
        rt.out.print(f"rate: at most {text(campaign.get('ratePerSecond'))} SMS per second")
    if campaign.get("quietHours"):
        rt.out.print(f"quiet hours: {_quiet(campaign)} (each recipient's local time)")


def _quiet(campaign: dict[str, Any]) -> str:
    quiet = campaign.get("quietHours")
    if not isinstance(quiet, dict):
        return "-"
    return f"{text(quiet.get('start'))}-{text(quiet.get('end'))}"


# ---- control: pause, resume, cancel; the estimate ----------------------------------------------


def _control(ctx: typer.Context, campaign_id: str, action: str, done: str) -> None:
    rt = runtime(ctx)
    with _known_campaign(campaign_id):
        campaign = rt.api.call_object("POST", _path(campaign_id, action))
    counts = campaign.get("counts") or {}
    rt.out.print(
        f"campaign {text(campaign.get('campaignId'))} {done}: status {text(campaign.get('status'))}, "
        f"{count(counts, 'queued')} queued of {count(counts, 'total')}"
    )


@app.command("pause")
def pause(ctx: typer.Context, campaign_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Pause: nothing more is sent, SMS already queued included, until `resume`."""
    _control(ctx, campaign_id, "pause", "paused")


@app.command("resume")
def resume(ctx: typer.Context, campaign_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Resume a paused campaign."""
    _control(ctx, campaign_id, "resume", "resumed")


@app.command("cancel")
def cancel(ctx: typer.Context, campaign_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Cancel for good: every recipient still queued ends cancelled; nothing more is sent."""
    _control(ctx, campaign_id, "cancel", "cancelled")


@app.command("estimate")
def estimate(ctx: typer.Context, campaign_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Messages and SMS parts the recipients loaded so far amount to (what the provider bills)."""
    rt = runtime(ctx)
    with _known_campaign(campaign_id):
        result = rt.api.call_object("GET", _path(campaign_id, "estimate"))
    encodings = result.get("encodings") or {}
    rt.out.print(
        f"{text(result.get('messages'))} messages, {text(result.get('segments'))} SMS parts "
        f"(GSM-7: {text(encodings.get('GSM-7'))}, UCS-2: {text(encodings.get('UCS-2'))})"
    )


@app.command("watch")
def watch(
    ctx: typer.Context, campaign_id: Annotated[str, typer.Argument(metavar="ID")], interval: Interval = 1.0
) -> None:
    """Follow a campaign's sending with a progress bar until nothing is queued (Ctrl-C stops watching)."""
    rt = runtime(ctx)
    try:
        with _known_campaign(campaign_id):
            campaign = _follow_sending(rt.api, campaign_id, interval, rt.out)
    except KeyboardInterrupt:
        rt.out.print(f"stopped watching; the campaign goes on (chatflow campaign status {campaign_id})")
        return
    _print_summary(rt.out, campaign)


@app.command("preview")
def preview(
    ctx: typer.Context,
    template: Annotated[str, typer.Option("--template", help="The text, with {{variables}}.")],
    variables: Annotated[
        list[str] | None,
        typer.Option("--var", help="A variable's value, as NAME=VALUE (repeat for each variable)."),
    ] = None,
) -> None:
    """Show the text one recipient would get: its encoding, SMS parts and length (nothing is stored)."""
    rt = runtime(ctx)
    values: dict[str, str] = {}
    for item in variables or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise CliError(f"--var {item!r}: write it as NAME=VALUE, e.g. --var first_name=Ana")
        values[name] = value
    result = rt.api.call_object("POST", "/v1/campaigns/preview", {"template": template, "variables": values})
    rt.out.print(text(result.get("text")))
    rt.out.print(
        f"{text(result.get('encoding'))}, {text(result.get('segments'))} SMS part(s), "
        f"{text(result.get('characters'))} characters"
    )


@app.command("list")
def list_campaigns(ctx: typer.Context, limit: Limit = 20, follow: FollowAll = False) -> None:
    """List campaigns, newest first."""
    rt = runtime(ctx)
    pages = rt.api.pages("/v1/campaigns", {"limit": limit}, follow=follow)
    columns: tuple[tuple[str, int], ...] = (("id", 36), ("name", 24), ("status", 9), ("total", 8))
    columns += (*((name, max(7, len(name))) for name in STATUSES), ("created", 24))
    shown, more = 0, False
    for items, cursor in pages:
        more = cursor is not None
        table = _table(columns, header=shown == 0)
        for campaign in items:
            counts = campaign.get("counts") or {}
            table.add_row(
                text(campaign.get("campaignId")),
                text(campaign.get("name")),
                text(campaign.get("status")),
                *(str(count(counts, n)) for n in ("total", *STATUSES)),
                text(campaign.get("createdAt")),
            )
        if items:
            rt.out.print(table)
        shown += len(items)
    if shown == 0:
        rt.out.print("no campaigns yet: chatflow campaign create --name ... --template ...")
    elif more:
        rt.out.print("more campaigns: pass --all")


@app.command("status")
def status(ctx: typer.Context, campaign_id: Annotated[str, typer.Argument(metavar="ID")]) -> None:
    """Show a campaign: name, status, counts, last error."""
    rt = runtime(ctx)
    with _known_campaign(campaign_id):
        campaign = rt.api.call_object("GET", _path(campaign_id))
    _print_campaign(rt.out, campaign)


def _print_campaign(console: Console, campaign: dict[str, Any]) -> None:
    counts = campaign.get("counts") or {}
    table = Table(show_header=False, box=None)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    table.add_row("id", text(campaign.get("campaignId")))
    table.add_row("name", text(campaign.get("name")))
    table.add_row("status", text(campaign.get("status")))
    table.add_row("template", text(campaign.get("template")))
    table.add_row("variables", text(campaign.get("variables")))
    table.add_row("sender id", text(campaign.get("senderId")))
    table.add_row("valid for", f"{text(campaign.get('validFor'))} s")
    table.add_row("send at", text(campaign.get("sendAt")))
    table.add_row(
        "rate", f"{text(campaign.get('ratePerSecond'))} per second" if campaign.get("ratePerSecond") else "-"
    )
    table.add_row("quiet hours", _quiet(campaign))
    for name in ("total", *STATUSES):
        table.add_row(name, str(count(counts, name)))
    table.add_row("last error", text(campaign.get("lastError")))
    table.add_row("created", text(campaign.get("createdAt")))
    console.print(table)


def _table(columns: tuple[tuple[str, int], ...], *, header: bool) -> Table:
    """Fixed-width columns, so that the tables of consecutive pages line up."""
    table = Table(box=None, show_header=header, header_style="bold", pad_edge=False)
    for name, width in columns:
        table.add_column(name, min_width=width, overflow="fold")
    return table


# ---- recipients ---------------------------------------------------------------------------------


@app.command("recipients")
def recipients(
    ctx: typer.Context,
    campaign_id: Annotated[str, typer.Argument(metavar="ID")],
    status_filter: Annotated[
        RecipientStatus | None, typer.Option("--status", help="Only recipients in this state.")
    ] = None,
    limit: Limit = 20,
    follow: FollowAll = False,
) -> None:
    """List a campaign's recipients: iccid, status, attempts, last error."""
    rt = runtime(ctx)
    query = {"limit": limit, "status": status_filter.value if status_filter else None}
    columns = (("iccid", 20), ("status", 9), ("attempts", 8), ("last error", 30))
    shown, more = 0, False
    with _known_campaign(campaign_id):
        pages = rt.api.pages(_path(campaign_id, "recipients"), query, follow=follow)
        first = next(pages)
    for items, cursor in itertools.chain([first], pages):
        more = cursor is not None
        table = _table(columns, header=shown == 0)
        for recipient in items:
            table.add_row(
                text(recipient.get("iccid")),
                text(recipient.get("status")),
                text(recipient.get("attempts")),
                text(recipient.get("lastError")),
            )
        if items:
            rt.out.print(table)
        shown += len(items)
    if shown == 0:
        rt.out.print("no recipients" + (f" with status {status_filter.value}" if status_filter else ""))
    elif more:
        rt.out.print(f"{shown} shown; more recipients: pass --all")


# ---- upload ---------------------------------------------------------------------------------------


@app.command("upload")
def upload(
    ctx: typer.Context,
    campaign_id: Annotated[str, typer.Argument(metavar="ID")],
    file: Annotated[
        Path,
        typer.Argument(exists=True, dir_okay=False, readable=True, help="CSV: an iccid column + variables."),
    ],
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Return once the file is uploaded; do not follow the sending.")
    ] = False,
    interval: Interval = 1.0,
) -> None:
    """Upload recipients (CSV), then follow the upload's checks and the sending until nothing is queued."""
    rt = runtime(ctx)
    api = rt.api
    with _known_campaign(campaign_id):
        grant = api.call_object("POST", _path(campaign_id, "uploads"))
    upload_id, upload_url = grant.get("uploadId"), grant.get("uploadUrl")
    if not (isinstance(upload_id, str) and isinstance(upload_url, str)):
        raise CliError("the API answered the upload request without uploadId and uploadUrl")
    _put_file(api.http, upload_url, file, rt.err)
    rt.out.print(f"uploaded {file.name}: upload {upload_id}")
    if no_wait:
        return
    try:
        result = _wait_for_upload(api, campaign_id, upload_id, interval, rt.err)
        _print_upload(rt.out, result)
        if result.get("status") == "rejected":
            raise typer.Exit(1)
        campaign = _follow_sending(api, campaign_id, interval, rt.out)
    except KeyboardInterrupt:
        rt.out.print(
            f"stopped watching; the campaign goes on without you (chatflow campaign status {campaign_id})"
        )
        return
    _print_summary(rt.out, campaign)


def _print_summary(console: Console, campaign: dict[str, Any]) -> None:
    counts = campaign.get("counts") or {}
    shown = [n for n in DONE if n in ("sent", "failed", "delivered") or count(counts, n)]
    summary = ", ".join(f"{count(counts, n)} {n}" for n in shown)
    console.print(f"nothing left queued: {summary} of {count(counts, 'total')}")
    if campaign.get("lastError"):
        console.print(f"last error: {text(campaign.get('lastError'))}")


class _Reading:
    """A file read in chunks (urllib3 streams it) that moves a progress bar."""

    def __init__(self, file: IO[bytes], progress: Progress, task: Any) -> None:
        self._file = file
        self._progress = progress
        self._task = task

    def read(self, size: int = -1) -> bytes:
        chunk = self._file.read(size)
        self._progress.advance(self._task, len(chunk))
        return chunk


def _put_file(http: Http, url: str, path: Path, console: Console) -> None:
    """PUT the file to the presigned URL, streamed from disk (never read whole)."""
    size = path.stat().st_size
    columns = (TextColumn("uploading"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with (
        path.open("rb") as file,
        Progress(*columns, console=console, transient=True) as progress,
    ):
        task = progress.add_task("upload", total=size)
        response = http.request(
            "PUT",
            url,
            body=_Reading(file, progress, task),  # type: ignore[arg-type]  # urllib3 only calls read()
            headers={"Content-Type": "text/csv", "Content-Length": str(size)},
        )
    if response.status >= 300:
        raise s3_error(response)


def _wait_for_upload(
    api: ApiClient, campaign_id: str, upload_id: str, interval: float, console: Console
) -> dict[str, Any]:
    path = _path(campaign_id, "uploads", upload_id)
    with console.status("checking the file…") as spinner:
        while True:
            result = api.call_object("GET", path)
            if result.get("status") in ("accepted", "rejected"):
                return result
            spinner.update(f"checking the file… ({text(result.get('status'))})")
            sleep(interval)


def _print_upload(console: Console, result: dict[str, Any]) -> None:
    if result.get("status") == "rejected":
        console.print(f"[red]upload rejected: {text(result.get('error'))}[/red]")
    else:
        skipped = result.get("skipped") or 0
        console.print(
            f"upload accepted: {text(result.get('accepted'))} recipients, "
            + (f"{text(skipped)} skipped (opted out), " if skipped else "")
            + f"{text(result.get('duplicates'))} duplicates, {text(result.get('invalidRows'))} invalid rows"
        )
    errors = [e for e in result.get("errors") or [] if isinstance(e, dict)]
    for error in errors[:ROW_ERRORS_SHOWN]:
        console.print(f"  row {text(error.get('row'))}: {text(error.get('message'))}")
    if len(errors) > ROW_ERRORS_SHOWN:
        console.print(
            f"  … and {len(errors) - ROW_ERRORS_SHOWN} more listed (first 100 kept): "
            f"{text(result.get('invalidRows'))} invalid rows in all"
        )


def _follow_sending(api: ApiClient, campaign_id: str, interval: float, console: Console) -> dict[str, Any]:
    """Poll the campaign until nothing is queued, with a bar of (total - queued) / total.

    The bar names the campaign's status: paused (it keeps watching, and goes on when the
    campaign is resumed), scheduled (before sendAt), cancelled (the rest end cancelled)."""
    columns = (
        SpinnerColumn(),
        TextColumn("{task.fields[status]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(
            "{task.fields[sent]} sent, {task.fields[failed]} failed, {task.fields[delivered]} delivered, "
            "{task.fields[skipped]} skipped, {task.fields[expired]} expired"
        ),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        fields: dict[str, Any] = dict.fromkeys(DONE, 0)
        task = progress.add_task("sending", total=None, status="sending", **fields)
        shown = ""
        while True:
            campaign = api.call_object("GET", _path(campaign_id))
            counts = campaign.get("counts") or {}
            done = sum(count(counts, n) for n in DONE)
            fields = {n: count(counts, n) for n in DONE}
            state = text(campaign.get("status"))
            if state != shown and shown:
                progress.console.print(f"campaign {state}")  # a line per change: paused, sending again
            shown = state
            progress.update(task, total=count(counts, "total"), completed=done, status=state, **fields)
            if count(counts, "queued") == 0:
                return campaign
            sleep(interval)
