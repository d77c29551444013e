"""A stand-in for the ChatFlow API's campaign routes (CONTRACT §1 sign-in, §5 campaigns), in memory.

The campaign API is built in parallel with the CLI: this stub follows the contract so the
CLI's campaign commands can be tested before (and independently of) the real routes.
It also plays S3 for the presigned PUT, and moves a campaign forward each time it is read.
"""

from __future__ import annotations

import csv
import io
import json
import re
import secrets
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

OPERATOR = "+14155550100"
NOT_OPERATOR = "+14155550666"
CODE = "123456"
SIGNATURE = "stub-signature"
_VARIABLE = re.compile(r"\{\{([A-Za-z0-9_]+)\}\}")
_ICCID = re.compile(r"\d{19,20}")


@dataclass
class Put:
    """One PUT the stub's S3 received."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class StubUpload:
    upload_id: str
    key: str
    status: str = "pending"
    result: dict[str, Any] = field(default_factory=dict)
    # GETs that still answer "processing" once the file is in, before the result shows.
    processing_reads: int = 1


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"error": {"code": code, "message": message}}
        if details:
            self.body["error"]["details"] = details


class StubApi:
    def __init__(self, *, auth_mode: str = "phone", sends_per_read: int = 2) -> None:
        self.auth_mode = auth_mode
        self.sends_per_read = sends_per_read
        self.tokens: dict[str, str] = {}
        self.sessions_created = 0
        self.campaigns: dict[str, dict[str, Any]] = {}
        self.recipients: dict[str, list[dict[str, Any]]] = {}
        self.uploads: dict[str, StubUpload] = {}
        self.puts: list[Put] = []
        self.requests: list[str] = []
        self.opted_out: set[str] = set()  # ICCIDs loaded as skipped recipients
        # Called on each read of a campaign (its number, the campaign): an operator elsewhere.
        self.on_read: Callable[[int, dict[str, Any]], None] | None = None
        self.reads = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> StubApi:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ---- test helpers -----------------------------------------------------------------------

    def add_campaign(self, name: str, template: str = "Hi {{name}}", *, iccids: tuple[str, ...] = ()) -> str:
        campaign = self._new_campaign({"name": name, "template": template})
        for iccid in iccids:
            self._add_recipient(campaign["campaignId"], iccid)
        return str(campaign["campaignId"])

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    # ---- routes -------------------------------------------------------------------------------

    def dispatch(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        with self._lock:
            self.requests.append(f"{method} {path}")
            if path.startswith("/s3/"):
                return self._s3_put(method, path, query, headers, body)
            if (method, path) == ("POST", "/v1/verifications"):
                if self.auth_mode == "phone":
                    raise ApiError(409, "code_not_required", "this stack signs in by phone number alone")
                return 202, {"phoneNumber": json.loads(body)["phoneNumber"], "expiresInSeconds": 300}
            if (method, path) == ("POST", "/v1/sessions"):
                return self._sign_in(json.loads(body))
            caller = self.tokens.get(headers.get("authorization", "").removeprefix("Bearer "))
            if caller is None:
                raise ApiError(401, "unauthorized", "sign in first")
            if caller != OPERATOR:
                raise ApiError(403, "forbidden", "campaigns are for operators")
            return self._campaign_route(method, path, query, body)

    def _sign_in(self, body: dict[str, Any]) -> tuple[int, Any]:
        if self.auth_mode == "otp" and body.get("code") != CODE:
            raise ApiError(401, "invalid_code", "wrong or expired code: ask for a new one")
        token = secrets.token_hex(16)
        self.tokens[token] = body["phoneNumber"]
        self.sessions_created += 1
        user = {"userId": "u1", "phoneNumber": body["phoneNumber"], "roles": []}
        return 201, {"token": token, "expiresAt": "2099-01-01T00:00:00.000Z", "user": user}

    def _campaign_route(self, method: str, path: str, query: dict[str, str], body: bytes) -> tuple[int, Any]:
        parts = path.strip("/").split("/")[2:]  # after v1/campaigns
        if parts == [] and method == "POST":
            return 201, self._new_campaign(json.loads(body))
        if parts == [] and method == "GET":
            newest = sorted(self.campaigns.values(), key=lambda c: c["createdAt"], reverse=True)
            return 200, _page(newest, query)
        if parts == ["preview"] and method == "POST":
            request = json.loads(body)
            variables = request.get("variables", {})
            missing = sorted(set(_VARIABLE.findall(request["template"])) - set(variables))
            if missing:
                raise ApiError(400, "validation_error", "no value for " + ", ".join(missing))
            rendered = _VARIABLE.sub(lambda m: variables[m.group(1)], request["template"])
            return 200, {"text": rendered, "encoding": "GSM-7", "segments": 1, "characters": len(rendered)}
        campaign = self.campaigns.get(parts[0]) if parts else None
        if campaign is None:
            raise ApiError(404, "not_found", "no such campaign")
        if parts[1:] == [] and method == "GET":
            self.reads += 1
            if self.on_read is not None:
                self.on_read(self.reads, campaign)
            self._send_some(campaign)
            return 200, campaign
        if len(parts) == 2 and parts[1] in ("pause", "resume", "cancel") and method == "POST":
            return 200, self._control(campaign, parts[1])
        if parts[1:] == ["estimate"] and method == "GET":
            messages = campaign["counts"]["total"] - campaign["counts"]["skipped"]
            return 200, {
                "messages": messages,
                "segments": messages,
                "encodings": {"GSM-7": messages, "UCS-2": 0},
            }
        if parts[1:] == ["uploads"] and method == "POST":
            upload_id = f"up-{len(self.uploads) + 1}"
            key = f"campaigns/{campaign['campaignId']}/{upload_id}.csv"
            self.uploads[upload_id] = StubUpload(upload_id, key)
            url = f"{self.url}/s3/{key}?X-Amz-Signature={SIGNATURE}"
            return 201, {"uploadId": upload_id, "uploadUrl": url, "key": key, "expiresInSeconds": 900}
        if parts[1:2] == ["uploads"] and len(parts) == 3 and method == "GET":
            upload = self.uploads.get(parts[2])
            if upload is None:
                raise ApiError(404, "not_found", "no such upload")
            return 200, self._read_upload(upload)
        if parts[1:] == ["recipients"] and method == "GET":
            wanted = query.get("status")
            rows = [r for r in self.recipients[campaign["campaignId"]] if wanted in (None, r["status"])]
            return 200, _page(sorted(rows, key=lambda r: r["iccid"]), query)
        raise ApiError(404, "not_found", f"no route for {method} {path}")

    def _new_campaign(self, body: dict[str, Any]) -> dict[str, Any]:
        template = str(body.get("template", ""))
        leftover = _VARIABLE.sub("", template)
        if "{{" in leftover or "}}" in leftover:
            at = template.find("{{" if "{{" in leftover else "}}")
            raise ApiError(
                400,
                "invalid_template",
                "the template has a malformed variable",
                [{"field": "template", "message": f"unclosed or empty variable near character {at}"}],
            )
        campaign_id = str(uuid.uuid4())
        campaign = {
            "campaignId": campaign_id,
            "name": body["name"],
            "template": template,
            "variables": sorted(set(_VARIABLE.findall(template))),
            "senderId": body.get("senderId"),
            "status": "draft",
            "counts": dict.fromkeys(
                ("total", "queued", "sent", "failed", "delivered", "skipped", "expired", "cancelled"), 0
            ),
            "lastError": None,
            "validFor": body.get("validFor", 86400),
            "sendAt": body.get("sendAt"),
            "ratePerSecond": body.get("ratePerSecond"),
            "quietHours": body.get("quietHours"),
            "createdAt": f"2026-11-23T20:01:{len(self.campaigns):02d}.000Z",
        }
        self.campaigns[campaign_id] = campaign
        self.recipients[campaign_id] = []
        return campaign

    def _add_recipient(self, campaign_id: str, iccid: str) -> None:
        """Queued, or skipped when the ICCID is in ``opted_out``."""
        status = "skipped" if iccid in self.opted_out else "queued"
        self.recipients[campaign_id].append(
            {"iccid": iccid, "status": status, "attempts": 0, "lastError": None, "providerMessageId": None}
        )
        campaign = self.campaigns[campaign_id]
        campaign["counts"]["total"] += 1
        campaign["counts"][status] += 1
        campaign["status"] = "sending"

    def _control(self, campaign: dict[str, Any], action: str) -> dict[str, Any]:
        """Pause, resume or cancel, refused as the contract says (409)."""
        state = campaign["status"]
        if state == "cancelled" and action != "cancel":
            raise ApiError(409, "campaign_cancelled", "the campaign is cancelled, for good")
        if state == "completed":
            raise ApiError(409, "campaign_completed", f"the campaign is completed: nothing left to {action}")
        campaign["status"] = {"pause": "paused", "resume": "sending", "cancel": "cancelled"}[action]
        return campaign

    def _send_some(self, campaign: dict[str, Any]) -> None:
        """Each read moves a few queued recipients on: ICCIDs ending in 0 fail, the others are sent;
        none while paused; all cancelled once cancelled."""
        counts = campaign["counts"]
        queued = [r for r in self.recipients[campaign["campaignId"]] if r["status"] == "queued"]
        if campaign["status"] == "paused":
            return
        if campaign["status"] == "cancelled":
            for recipient in queued:
                recipient["status"] = "cancelled"
                counts["queued"] -= 1
                counts["cancelled"] += 1
            return
        for recipient in queued[: self.sends_per_read]:
            recipient["attempts"] = 1
            counts["queued"] -= 1
            if recipient["iccid"].endswith("0"):
                recipient["status"] = "failed"
                recipient["lastError"] = "invalid_destination: the provider refused the number"
                campaign["lastError"] = recipient["lastError"]
                counts["failed"] += 1
            else:
                recipient["status"] = "sent"
                counts["sent"] += 1
        if campaign["status"] == "sending" and counts["queued"] == 0:
            campaign["status"] = "completed"

    # ---- S3 -------------------------------------------------------------------------------------

    def _s3_put(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes
    ) -> tuple[int, Any]:
        if method != "PUT" or query.get("X-Amz-Signature") != SIGNATURE:
            return 403, _s3_error("AccessDenied", "a presigned PUT is needed")
        if "authorization" in headers:
            return 400, _s3_error("InvalidArgument", "Only one auth mechanism allowed")
        if headers.get("content-type") != "text/csv":
            return 403, _s3_error("SignatureDoesNotMatch", "the signed Content-Type is text/csv")
        self.puts.append(Put(path, headers, body))
        key = path.removeprefix("/s3/")
        upload = next(u for u in self.uploads.values() if u.key == key)
        campaign_id = key.split("/")[1]
        upload.status = "processing"
        upload.result = self._load_csv(campaign_id, upload.upload_id, key, body)
        return 200, None

    def _load_csv(self, campaign_id: str, upload_id: str, key: str, body: bytes) -> dict[str, Any]:
        campaign = self.campaigns[campaign_id]
        reader = csv.DictReader(io.StringIO(body.decode("utf-8-sig")))
        columns = set(reader.fieldnames or [])
        result: dict[str, Any] = {"uploadId": upload_id, "key": key, "accepted": 0, "duplicates": 0}
        result |= {"invalidRows": 0, "skipped": 0, "errors": [], "error": None}
        missing = sorted(({"iccid"} | set(campaign["variables"])) - columns)
        if missing:
            return result | {"status": "rejected", "error": f"missing columns: {', '.join(missing)}"}
        known = {r["iccid"] for r in self.recipients[campaign_id]}
        for number, row in enumerate(reader, start=2):
            iccid = row["iccid"].strip()
            if not _ICCID.fullmatch(iccid):
                result["invalidRows"] += 1
                result["errors"].append({"row": number, "message": f"invalid iccid {iccid!r}"})
            elif iccid in known:
                result["duplicates"] += 1
            else:
                known.add(iccid)
                self._add_recipient(campaign_id, iccid)
                result["skipped" if iccid in self.opted_out else "accepted"] += 1
        return result | {"status": "accepted"}

    def _read_upload(self, upload: StubUpload) -> dict[str, Any]:
        if upload.status == "processing" and upload.processing_reads > 0:
            upload.processing_reads -= 1
            return {"uploadId": upload.upload_id, "key": upload.key, "status": "processing"}
        if upload.status == "pending":
            return {"uploadId": upload.upload_id, "key": upload.key, "status": "pending"}
        return upload.result


def _page(items: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
    limit = int(query.get("limit", "20"))
    cursor = query.get("cursor", "0")
    if not cursor.isdigit():
        raise ApiError(400, "invalid_cursor", "the cursor is not one of ours")
    start = int(cursor)
    end = start + limit
    return {"items": items[start:end], "nextCursor": str(end) if end < len(items) else None}


def _s3_error(code: str, message: str) -> bytes:
    return f"<?xml version='1.0'?><Error><Code>{code}</Code><Message>{message}</Message></Error>".encode()


def _handler(stub: StubApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            headers = {k.lower(): v for k, v in self.headers.items()}
            body = self.rfile.read(int(headers.get("content-length") or 0))
            try:
                status, payload = stub.dispatch(self.command, parts.path, query, headers, body)
            except ApiError as error:
                status, payload = error.status, error.body
            if isinstance(payload, bytes):
                data, kind = payload, "application/xml"
            else:
                data, kind = json.dumps(payload).encode() if payload is not None else b"", "application/json"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler
