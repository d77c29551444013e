"""The campaigns table, the campaign bucket and the SendSms queue, for campaigns.

Items (PK / SK):

- ``CAMPAIGN#<id>`` / ``META``: the campaign, ``validFor``, its counts (total, queued, sent,
  failed, delivered, skipped, expired, cancelled; an absent count is 0: campaigns stored
  before a count existed read as 0), ``lastError``, and while an upload loads its lease:
  ``loadingUpload`` / ``loadingToken`` / ``loadingUntil``. One load of a campaign at a
  time, so duplicate ICCIDs are found reliably and two jobs for the same upload (S3
  notifies at least once) never load the same rows side by side: the lease goes to a
  fresh token when the campaign is free, its lease ran out, or the caller presents the
  holder's token (a continuation); the load's counts are added only while its token holds
  the lease, so one whose lease ran out and was taken over adds nothing.
- ``CAMPAIGNS`` / ``<createdAt>#<id>``: the list, newest first.
- ``CAMPAIGN#<id>`` / ``UPLOAD#<uploadId>``: an upload, its counters, first row errors and
  the loader's checkpoint.
- ``CAMPAIGN#<id>`` / ``R#<iccid>``: a recipient; ``GSI1PK = CAMPAIGN#<id>#<status>``,
  ``GSI1SK = <iccid>`` list the recipients of one status (index ``ByStatus``).
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from chatflow.adapters.aws_errors import (
    CONDITION_FAILED,
    CONDITION_REASON,
    REFUSED_WRITE,
    TRANSACTION_CANCELLED,
    dynamo_errors,
    s3_errors,
)
from chatflow.adapters.dynamo import batch_get, batch_write, from_raw, to_raw, to_value
from chatflow.domain.campaign_control import ControlState, QuietHours, SendControl
from chatflow.domain.campaigns import (
    DEFAULT_VALID_FOR,
    Campaign,
    CampaignRecipient,
    Checkpoint,
    Counts,
    Estimate,
    Progress,
    RecipientStatus,
    RowError,
    Upload,
)
from chatflow.domain.clock import from_iso, to_iso
from chatflow.domain.pagination import Page
from chatflow.errors import ConcurrentUpdate, InvalidCursor

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_s3.client import S3Client

STATUS_INDEX = "ByStatus"
_COUNTS = ("total", "queued", "sent", "failed", "delivered", "skipped", "expired", "cancelled")
# The loader's estimate counters on the campaign: Estimate field -> attribute.
_ESTIMATE = {"messages": "estMessages", "segments": "estSegments", "gsm7": "estGsm7", "ucs2": "estUcs2"}
# A progress write refused because another event moved the recipient first is re-read and
# tried again; each retry follows a move, so a handful is plenty (statuses only go forward).
_APPLY_ROUNDS = 8
# A sending campaign settles (UpdateItem conditional on ``#s = :sending AND`` this).
_SETTLED_WHEN = {
    "draft": "#t = :zero AND attribute_not_exists(loadingUpload)",
    "completed": "#t > :zero AND #q = :zero AND attribute_not_exists(loadingUpload)",
}


def _meta_key(campaign_id: str) -> dict[str, Any]:
    return to_raw({"PK": f"CAMPAIGN#{campaign_id}", "SK": "META"})


def _upload_key(campaign_id: str, upload_id: str) -> dict[str, Any]:
    return to_raw({"PK": f"CAMPAIGN#{campaign_id}", "SK": f"UPLOAD#{upload_id}"})


def _recipient_key(campaign_id: str, iccid: str) -> dict[str, Any]:
    return to_raw({"PK": f"CAMPAIGN#{campaign_id}", "SK": f"R#{iccid}"})


def _campaign(item: Mapping[str, Any]) -> Campaign:
    return Campaign(
        campaign_id=str(item["campaignId"]),
        name=str(item["name"]),
        template=str(item["template"]),
        variables=tuple(item.get("variables") or ()),
        sender_id=item.get("senderId"),
        status=item.get("status", "draft"),
        counts=Counts(**{name: max(0, int(item.get(name, 0))) for name in _COUNTS}),
        last_error=item.get("lastError"),
        created_at=from_iso(str(item["createdAt"])),
        created_by=str(item.get("createdBy", "")),
        valid_for=int(item.get("validFor", DEFAULT_VALID_FOR)),
        send_at=from_iso(str(item["sendAt"])) if item.get("sendAt") else None,
        rate_per_second=int(item["ratePerSecond"]) if item.get("ratePerSecond") else None,
        quiet_hours=(
            QuietHours.parse(str(item["quietStart"]), str(item["quietEnd"]))
            if item.get("quietStart")
            else None
        ),
        control=item.get("control") or "none",
        paused_at=from_iso(str(item["pausedAt"])) if item.get("pausedAt") else None,
        estimate=Estimate(**{name: max(0, int(item.get(attr, 0))) for name, attr in _ESTIMATE.items()}),
    )


def _upload(item: Mapping[str, Any]) -> Upload:
    raw_checkpoint = item.get("checkpoint")
    checkpoint = (
        Checkpoint(
            int(raw_checkpoint["offset"]), int(raw_checkpoint["row"]), tuple(raw_checkpoint["columns"])
        )
        if raw_checkpoint
        else None
    )
    errors = tuple(RowError(int(e["row"]), str(e["message"])) for e in json.loads(item.get("errors") or "[]"))
    return Upload(
        campaign_id=str(item["campaignId"]),
        upload_id=str(item["uploadId"]),
        key=str(item["key"]),
        status=item.get("status", "pending"),
        accepted=int(item.get("accepted", 0)),
        duplicates=int(item.get("duplicates", 0)),
        invalid_rows=int(item.get("invalidRows", 0)),
        skipped=int(item.get("skipped", 0)),
        errors=errors,
        error=item.get("error"),
        checkpoint=checkpoint,
        created_at=from_iso(str(item["createdAt"])) if item.get("createdAt") else None,
    )


def _recipient(item: Mapping[str, Any]) -> CampaignRecipient:
    return CampaignRecipient(
        campaign_id=str(item["campaignId"]),
        iccid=str(item["iccid"]),
        status=item["status"],
        attempts=int(item.get("attempts", 0)),
        last_error=item.get("lastError"),
        provider_message_id=item.get("providerMessageId"),
        updated_at=from_iso(str(item["updatedAt"])) if item.get("updatedAt") else None,
        upload_id=str(item.get("uploadId", "")),
        row=int(item.get("row", 0)),
    )


def _upload_values(upload: Upload) -> dict[str, Any]:
    checkpoint = upload.checkpoint
    return {
        ":status": upload.status,
        ":accepted": upload.accepted,
        ":duplicates": upload.duplicates,
        ":invalid": upload.invalid_rows,
        ":skipped": upload.skipped,
        ":errors": json.dumps([{"row": e.row, "message": e.message} for e in upload.errors]),
        ":checkpoint": (
            {"offset": checkpoint.offset, "row": checkpoint.row, "columns": list(checkpoint.columns)}
            if checkpoint
            else None
        ),
    }


class DynamoCampaignRepository:
    def __init__(self, table: str, client: DynamoDBClient) -> None:
        self._table = table
        self._client = client

    # ---- campaigns ------------------------------------------------------------------------

    def create(self, campaign: Campaign) -> None:
        created = to_iso(campaign.created_at)
        item = {
            "PK": f"CAMPAIGN#{campaign.campaign_id}",
            "SK": "META",
            "campaignId": campaign.campaign_id,
            "name": campaign.name,
            "template": campaign.template,
            "variables": list(campaign.variables),
            "senderId": campaign.sender_id,
            "status": campaign.status,
            "createdAt": created,
            "createdBy": campaign.created_by,
            "validFor": campaign.valid_for,
            "sendAt": to_iso(campaign.send_at) if campaign.send_at else None,
            "ratePerSecond": campaign.rate_per_second,
            "control": campaign.control,
            **dict.fromkeys(_COUNTS, 0),
            **dict.fromkeys(_ESTIMATE.values(), 0),
        }
        if campaign.quiet_hours is not None:
            item["quietStart"], item["quietEnd"] = campaign.quiet_hours.text()
        entry = {
            "PK": "CAMPAIGNS",
            "SK": f"{created}#{campaign.campaign_id}",
            "campaignId": campaign.campaign_id,
        }
        with dynamo_errors():
            self._client.transact_write_items(
                TransactItems=[
                    {"Put": {"TableName": self._table, "Item": to_raw(item)}},
                    {"Put": {"TableName": self._table, "Item": to_raw(entry)}},
                ]
            )

    def get(self, campaign_id: str) -> Campaign | None:
        with dynamo_errors():
            raw = self._client.get_item(
                TableName=self._table, Key=_meta_key(campaign_id), ConsistentRead=True
            )
        return _campaign(from_raw(raw["Item"])) if "Item" in raw else None

    def list_campaigns(self, *, limit: int, position: dict[str, Any] | None) -> Page[Campaign]:
        query: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "PK = :pk",
            "ExpressionAttributeValues": {":pk": to_value("CAMPAIGNS")},
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if position is not None:
            sk = position.get("sk")
            if not isinstance(sk, str):
                raise InvalidCursor("The cursor is not valid for this list: omit it to start again.")
            query["ExclusiveStartKey"] = to_raw({"PK": "CAMPAIGNS", "SK": sk})
        with dynamo_errors():
            response = self._client.query(**query)
        ids = [str(from_raw(raw)["campaignId"]) for raw in response.get("Items", [])]
        found = {
            c["campaignId"]: c for c in batch_get(self._client, self._table, [_meta_key(i) for i in ids])
        }
        last = response.get("LastEvaluatedKey")
        return Page(
            [_campaign(found[i]) for i in ids if i in found],
            {"sk": str(from_raw(last)["SK"])} if last else None,
        )

    # ---- uploads --------------------------------------------------------------------------

    def create_upload(self, upload: Upload) -> None:
        item = {
            "PK": f"CAMPAIGN#{upload.campaign_id}",
            "SK": f"UPLOAD#{upload.upload_id}",
            "campaignId": upload.campaign_id,
            "uploadId": upload.upload_id,
            "key": upload.key,
            "status": upload.status,
            "createdAt": to_iso(upload.created_at) if upload.created_at else None,
            "accepted": 0,
            "duplicates": 0,
            "invalidRows": 0,
            "errors": "[]",
        }
        with dynamo_errors():
            self._client.put_item(TableName=self._table, Item=to_raw(item))

    def get_upload(self, campaign_id: str, upload_id: str) -> Upload | None:
        with dynamo_errors():
            raw = self._client.get_item(
                TableName=self._table, Key=_upload_key(campaign_id, upload_id), ConsistentRead=True
            )
        return _upload(from_raw(raw["Item"])) if "Item" in raw else None

    def claim_upload(
        self, upload: Upload, *, token: str, holding: str | None, now: datetime, lease_until: datetime
    ) -> Upload | None:
        free = "attribute_not_exists(loadingUpload) OR loadingUntil < :now"
        values = {
            ":u": to_value(upload.upload_id),
            ":token": to_value(token),
            ":lease": to_value(to_iso(lease_until)),
            ":now": to_value(to_iso(now)),
            ":sending": to_value("sending"),
        }
        if holding is not None:
            free += " OR loadingToken = :holding"
            values[":holding"] = to_value(holding)
        lock_campaign: dict[str, Any] = {
            "TableName": self._table,
            "Key": _meta_key(upload.campaign_id),
            "UpdateExpression": (
                "SET loadingUpload = :u, loadingToken = :token, loadingUntil = :lease, #s = :sending"
            ),
            "ConditionExpression": f"attribute_exists(PK) AND ({free})",
            "ExpressionAttributeNames": {"#s": "status"},
            "ExpressionAttributeValues": values,
        }
        start_upload: dict[str, Any] = {
            "TableName": self._table,
            "Key": _upload_key(upload.campaign_id, upload.upload_id),
            "UpdateExpression": (
                "SET #s = :processing, #k = if_not_exists(#k, :key), campaignId = :cid, uploadId = :uid, "
                "createdAt = if_not_exists(createdAt, :now), accepted = if_not_exists(accepted, :zero), "
                "duplicates = if_not_exists(duplicates, :zero), "
                "invalidRows = if_not_exists(invalidRows, :zero), #e = if_not_exists(#e, :none)"
            ),
            "ConditionExpression": "attribute_not_exists(PK) OR #s IN (:pending, :processing)",
            "ExpressionAttributeNames": {"#s": "status", "#k": "key", "#e": "errors"},
            "ExpressionAttributeValues": {
                ":processing": to_value("processing"),
                ":pending": to_value("pending"),
                ":key": to_value(upload.key),
                ":cid": to_value(upload.campaign_id),
                ":uid": to_value(upload.upload_id),
                ":now": to_value(to_iso(now)),
                ":zero": to_value(0),
                ":none": to_value("[]"),
            },
        }
        with dynamo_errors(expect=REFUSED_WRITE) as call:
            items: list[Any] = [{"Update": lock_campaign}, {"Update": start_upload}]
            self._client.transact_write_items(TransactItems=items)
        if call.refused:
            return None
        return self.get_upload(upload.campaign_id, upload.upload_id)

    def _upload_update(self, upload: Upload) -> dict[str, Any]:
        values = _upload_values(upload)
        return {
            "Update": {
                "TableName": self._table,
                "Key": _upload_key(upload.campaign_id, upload.upload_id),
                "UpdateExpression": (
                    "SET #s = :status, accepted = :accepted, duplicates = :duplicates, "
                    "invalidRows = :invalid, skipped = :skipped, #e = :errors, #c = :checkpoint, "
                    "#err = :error"
                ),
                "ExpressionAttributeNames": {
                    "#s": "status",
                    "#e": "errors",
                    "#c": "checkpoint",
                    "#err": "error",
                },
                "ExpressionAttributeValues": {
                    **{k: to_value(v) for k, v in values.items()},
                    ":error": to_value(upload.error),
                },
            }
        }

    def save_progress(
        self,
        upload: Upload,
        *,
        token: str,
        added: int,
        lease_until: datetime,
        skipped: int = 0,
        estimate: Estimate | None = None,
    ) -> bool:
        more = estimate or Estimate()
        return self._fenced(
            upload,
            {
                "TableName": self._table,
                "Key": _meta_key(upload.campaign_id),
                "UpdateExpression": (
                    "ADD #t :all, #q :n, #k :k, #em :em, #es :es, #eg :eg, #eu :eu SET loadingUntil = :lease"
                ),
                "ConditionExpression": "loadingToken = :token",
                "ExpressionAttributeNames": {
                    "#t": "total",
                    "#q": "queued",
                    "#k": "skipped",
                    "#em": "estMessages",
                    "#es": "estSegments",
                    "#eg": "estGsm7",
                    "#eu": "estUcs2",
                },
                "ExpressionAttributeValues": {
                    ":all": to_value(added + skipped),
                    ":n": to_value(added),
                    ":k": to_value(skipped),
                    ":em": to_value(more.messages),
                    ":es": to_value(more.segments),
                    ":eg": to_value(more.gsm7),
                    ":eu": to_value(more.ucs2),
                    ":lease": to_value(to_iso(lease_until)),
                    ":token": to_value(token),
                },
            },
        )

    def set_control(self, campaign_id: str, state: ControlState, *, now: datetime) -> Campaign | None:
        not_completed = "(#s <> :completed OR control = :paused)"
        if state == "paused":
            update = "SET control = :state, pausedAt = :now"
            condition = "(attribute_not_exists(control) OR control = :none) AND #s <> :completed"
        elif state == "none":
            update = "SET control = :state REMOVE pausedAt"
            condition = "control = :paused"
        else:
            update = "SET control = :state, cancelledAt = :now REMOVE pausedAt"
            condition = f"(attribute_not_exists(control) OR control <> :state) AND {not_completed}"
        candidates = {
            ":state": state,
            ":now": to_iso(now),
            ":none": "none",
            ":paused": "paused",
            ":completed": "completed",
        }
        expression = f"{update} {condition}"
        with dynamo_errors(expect=REFUSED_WRITE) as call:
            response = self._client.update_item(
                TableName=self._table,
                Key=_meta_key(campaign_id),
                UpdateExpression=update,
                ConditionExpression=f"attribute_exists(PK) AND {condition}",
                ExpressionAttributeNames={"#s": "status"} if "#s" in condition else {},
                ExpressionAttributeValues={
                    name: to_value(value) for name, value in candidates.items() if name in expression
                },
                ReturnValues="ALL_NEW",
            )
        if call.refused:
            return None
        return _campaign(from_raw(response["Attributes"]))

    def finish_upload(self, upload: Upload, *, token: str, added: int) -> bool:
        finished = self._fenced(
            upload,
            {
                "TableName": self._table,
                "Key": _meta_key(upload.campaign_id),
                "UpdateExpression": ("ADD #t :n, #q :n REMOVE loadingUpload, loadingToken, loadingUntil"),
                "ConditionExpression": "loadingToken = :token",
                "ExpressionAttributeNames": {"#t": "total", "#q": "queued"},
                "ExpressionAttributeValues": {":n": to_value(added), ":token": to_value(token)},
            },
        )
        if finished:
            self._settle(upload.campaign_id)
        return finished

    def _fenced(self, upload: Upload, campaign_update: dict[str, Any]) -> bool:
        """The upload's update and ``campaign_update`` (conditional on the load's token) in
        one transaction; False when the token no longer holds the lease (nothing written).
        A conflict with another transaction on the campaign is raised, to be retried."""
        with dynamo_errors(expect=TRANSACTION_CANCELLED) as call:
            items: list[Any] = [self._upload_update(upload), {"Update": campaign_update}]
            self._client.transact_write_items(TransactItems=items)
        if call.error is not None:
            codes = call.reasons
            if len(codes) == 2 and codes[1] == CONDITION_REASON:
                return False
            raise call.error
        return True

    def _settle(self, campaign_id: str, statuses: Sequence[str] = ("draft", "completed")) -> None:
        """``completed`` when nothing is queued and nothing loads; back to ``draft`` when empty
        (of ``statuses``, the first whose condition holds)."""
        for status in statuses:
            condition = _SETTLED_WHEN[status]
            with dynamo_errors(expect=REFUSED_WRITE) as call:
                self._client.update_item(
                    TableName=self._table,
                    Key=_meta_key(campaign_id),
                    UpdateExpression="SET #s = :status",
                    ConditionExpression=f"#s = :sending AND {condition}",
                    ExpressionAttributeNames={"#s": "status", "#t": "total"}
                    | ({"#q": "queued"} if "#q" in condition else {}),
                    ExpressionAttributeValues={
                        ":status": to_value(status),
                        ":sending": to_value("sending"),
                        ":zero": to_value(0),
                    },
                )
            if not call.refused:
                return

    # ---- recipients -----------------------------------------------------------------------

    def existing(self, campaign_id: str, iccids: Sequence[str]) -> dict[str, CampaignRecipient]:
        keys = [_recipient_key(campaign_id, iccid) for iccid in iccids]
        return {item["iccid"]: _recipient(item) for item in batch_get(self._client, self._table, keys)}

    def put_recipients(self, recipients: Sequence[CampaignRecipient]) -> None:
        requests = [
            {
                "PutRequest": {
                    "Item": to_raw(
                        {
                            "PK": f"CAMPAIGN#{r.campaign_id}",
                            "SK": f"R#{r.iccid}",
                            "GSI1PK": f"CAMPAIGN#{r.campaign_id}#{r.status}",
                            "GSI1SK": r.iccid,
                            "campaignId": r.campaign_id,
                            "iccid": r.iccid,
                            "status": r.status,
                            "attempts": r.attempts,
                            "lastError": r.last_error,
                            "updatedAt": to_iso(r.updated_at) if r.updated_at else None,
                            "uploadId": r.upload_id,
                            "row": r.row,
                        }
                    )
                }
            }
            for r in recipients
        ]
        batch_write(self._client, self._table, requests)

    def list_recipients(
        self, campaign_id: str, *, status: RecipientStatus | None, limit: int, position: dict[str, Any] | None
    ) -> Page[CampaignRecipient]:
        after = position.get("iccid") if position else None
        if position is not None and not isinstance(after, str):
            raise InvalidCursor("The cursor is not valid for this list: omit it to start again.")
        pk = f"CAMPAIGN#{campaign_id}"
        if status is None:
            query: dict[str, Any] = {
                "TableName": self._table,
                "KeyConditionExpression": "PK = :pk AND begins_with(SK, :r)",
                "ExpressionAttributeValues": {":pk": to_value(pk), ":r": to_value("R#")},
            }
            if after:
                query["ExclusiveStartKey"] = to_raw({"PK": pk, "SK": f"R#{after}"})
        else:
            gsi = f"{pk}#{status}"
            query = {
                "TableName": self._table,
                "IndexName": STATUS_INDEX,
                "KeyConditionExpression": "GSI1PK = :pk",
                "ExpressionAttributeValues": {":pk": to_value(gsi)},
            }
            if after:
                query["ExclusiveStartKey"] = to_raw(
                    {"PK": pk, "SK": f"R#{after}", "GSI1PK": gsi, "GSI1SK": after}
                )
        query["Limit"] = limit
        with dynamo_errors():
            response = self._client.query(**query)
        items = [_recipient(from_raw(raw)) for raw in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return Page(items, {"iccid": items[-1].iccid} if last and items else None)

    def apply(self, progress: Progress) -> bool:
        """Move the recipient from its current status, if that is one ``progress`` moves from.

        The write is conditional on the status just read. Refused (another event moved the
        recipient in between, or DynamoDB cancelled the transaction for a conflicting one),
        the recipient is read again and the move retried from its new status: SmsDelivered
        that loses the race to SmsSent still ends ``delivered``, and SmsSent that loses to
        SmsDelivered finds it past ``sent`` and changes nothing.
        """
        key = _recipient_key(progress.campaign_id, progress.iccid)
        for attempt in range(_APPLY_ROUNDS):
            with dynamo_errors():
                raw = self._client.get_item(TableName=self._table, Key=key, ConsistentRead=True)
            if "Item" not in raw:
                return False
            current = str(from_raw(raw["Item"])["status"])
            if current not in progress.from_statuses:
                return False  # already there or past it: a duplicate or late event
            if self._move(progress, key, current):
                if current == "queued" and self._emptied(progress.campaign_id):
                    # never "draft": a recipient has just left the queue, so it was not empty
                    self._settle(progress.campaign_id, ("completed",))
                return True
            time.sleep(random.uniform(0, 0.01 * 2**attempt))  # noqa: S311 - jitter, not a secret
        raise ConcurrentUpdate(
            f"recipient {progress.iccid} of campaign {progress.campaign_id} kept changing while "
            f"moving it to {progress.to}: the event will be retried"
        )

    def _emptied(self, campaign_id: str) -> bool:
        """Whether the campaign is sending with nothing queued and nothing loading, read after
        a recipient left the queue. Read consistently after its own move, so the last of the
        moves always sees the queue empty; the update that completes the campaign is
        conditional on the same, so two moves that both see it empty complete it once. One read
        (a fifth of a write's price) after each move, where two conditional writes were tried:
        DynamoDB charges a refused write as a write, and they were refused until the last."""
        with dynamo_errors():
            raw = self._client.get_item(
                TableName=self._table,
                Key=_meta_key(campaign_id),
                ConsistentRead=True,
                ProjectionExpression="#s, queued, loadingUpload",
                ExpressionAttributeNames={"#s": "status"},
            )
        item = from_raw(raw.get("Item") or {})
        return item.get("status") == "sending" and item.get("queued") == 0 and "loadingUpload" not in item

    def _move(self, progress: Progress, key: dict[str, Any], current: str) -> bool:
        """One conditional transaction: recipient ``current`` → ``progress.to`` and the counts;
        False when it was refused (the recipient is no longer ``current``, or a conflict)."""
        sets: dict[str, tuple[str, Any]] = {
            "#s": ("status", progress.to),
            "#g": ("GSI1PK", f"CAMPAIGN#{progress.campaign_id}#{progress.to}"),
            "#u": ("updatedAt", to_iso(progress.at) if progress.at else None),
        }
        if progress.attempts is not None:
            sets["#a"] = ("attempts", progress.attempts)
        if progress.error is not None:
            sets["#le"] = ("lastError", progress.error)
        if progress.provider_message_id is not None:
            sets["#p"] = ("providerMessageId", progress.provider_message_id)
        names = {alias: name for alias, (name, _) in sets.items()}
        values = {f":v{alias[1:]}": to_value(value) for alias, (_, value) in sets.items()}
        update = "SET " + ", ".join(f"{alias} = :v{alias[1:]}" for alias in sets)
        campaign_update = "ADD #to :one, #from :minus"
        campaign_names = {"#to": progress.to, "#from": current}
        campaign_values = {":one": to_value(1), ":minus": to_value(-1)}
        if progress.error is not None and progress.to != "cancelled":  # an operator's act, not an error
            campaign_update += " SET lastError = :error"
            campaign_values[":error"] = to_value(progress.error)
        with dynamo_errors(expect=REFUSED_WRITE) as call:
            self._client.transact_write_items(
                TransactItems=[
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": key,
                            "UpdateExpression": update,
                            "ConditionExpression": "#s = :from",
                            "ExpressionAttributeNames": names,
                            "ExpressionAttributeValues": values | {":from": to_value(current)},
                        }
                    },
                    {
                        "Update": {
                            "TableName": self._table,
                            "Key": _meta_key(progress.campaign_id),
                            "UpdateExpression": campaign_update,
                            "ExpressionAttributeNames": campaign_names,
                            "ExpressionAttributeValues": campaign_values,
                        }
                    },
                ]
            )
        return call.refused is None


class DynamoCampaignControls:
    """The SMS gateway's view of campaigns (the campaigns table, read only, and the SMS
    table's per-campaign rate counters).

    ``control`` keeps each campaign's control for ``ttl_seconds`` (one GetItem per campaign
    per second per execution environment, whatever the batch); ``fresh=True`` reads it
    again, consistently (the read right before the provider call, so that no call starts
    after a pause or a cancel was stored).

    ``reserve``: one counter item per campaign and second (``CRATE#<id>#<second>`` in the
    SMS table, with a TTL); each send takes the next of the second's ``per_second`` places
    with one conditional ADD and waits until its place (``place / per_second`` into the
    second), so the campaign's sends are spread evenly instead of bunched at each second's
    start.
    """

    def __init__(
        self,
        campaigns_table: str,
        sms_table: str,
        client: DynamoDBClient,
        *,
        clock: Callable[[], float] = time.monotonic,
        ttl_seconds: float = 1.0,
    ) -> None:
        self._campaigns_table = campaigns_table
        self._sms_table = sms_table
        self._client = client
        self._clock = clock
        self._ttl = ttl_seconds
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, SendControl | None]] = {}

    def control(self, campaign_id: str, *, fresh: bool = False) -> SendControl | None:
        now = self._clock()
        if not fresh:
            with self._lock:
                cached = self._cache.get(campaign_id)
            if cached is not None and now - cached[0] < self._ttl:
                return cached[1]
        with dynamo_errors():
            raw = self._client.get_item(
                TableName=self._campaigns_table, Key=_meta_key(campaign_id), ConsistentRead=True
            )
        found = _campaign(from_raw(raw["Item"])).send_control() if "Item" in raw else None
        with self._lock:
            self._cache[campaign_id] = (now, found)
        return found

    def reserve(self, campaign_id: str, per_second: int, now: datetime) -> float | None:
        second = int(now.timestamp())
        # The second's first send takes the place its moment falls in (a send that reaches
        # the table late in a place still gets it: the place is not lost to a slow call), not
        # place 0: a send late in a second does not open that second's earlier places at once.
        start = math.floor((now.timestamp() - second) * per_second)
        if start >= per_second:
            return None  # no place left ahead in this second
        with dynamo_errors(expect=CONDITION_FAILED) as call:
            response = self._client.update_item(
                TableName=self._sms_table,
                Key=to_raw({"PK": f"CRATE#{campaign_id}#{second}", "SK": "RATE"}),
                UpdateExpression="SET granted = if_not_exists(granted, :start) + :one, #ttl = :ttl",
                ConditionExpression="attribute_not_exists(granted) OR granted < :most",
                ExpressionAttributeNames={"#ttl": "ttl"},
                ExpressionAttributeValues={
                    ":one": to_value(1),
                    ":start": to_value(start),
                    ":most": to_value(per_second),
                    ":ttl": to_value(second + 60),
                },
                ReturnValues="UPDATED_NEW",
            )
        if call.refused:
            return None
        place = int(from_raw(response["Attributes"])["granted"]) - 1
        return max(0.0, second + place / per_second - now.timestamp())


class S3RecipientFiles:
    def __init__(self, bucket: str, client: S3Client, *, chunk_size: int = 256 * 1024) -> None:
        self._bucket = bucket
        self._client = client
        self._chunk_size = chunk_size

    def chunks(self, key: str, *, start: int = 0) -> Iterable[bytes]:
        arguments: dict[str, Any] = {"Bucket": self._bucket, "Key": key}
        if start:
            arguments["Range"] = f"bytes={start}-"
        with s3_errors(expect="InvalidRange") as call:
            body = self._client.get_object(**arguments)["Body"]
        if call.refused:
            return  # resuming exactly at the end of the file: nothing left
        try:
            yield from body.iter_chunks(self._chunk_size)
        finally:
            body.close()

    def upload_url(self, key: str, *, expires_in: int) -> str:
        return str(
            self._client.generate_presigned_url(
                "put_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=expires_in
            )
        )
