"""Loading uploaded CSVs of campaign recipients, one job at a time (the campaign loader).

Two triggers, one job:

- S3 (``campaigns/<campaignId>/<name>.csv`` created): ``noticed`` puts a *load job* on the
  campaign load queue; nothing is read then, so an S3 event delivered twice only adds a
  job that finds the work done.
- The campaign load queue: ``run`` loads (or resumes) one upload from its checkpoint,
  streaming the object, until the invocation's budget (rows, time) is spent; then it
  puts the next job on the queue to go on in a fresh invocation. Recipients whose ICCID
  opted out are stored ``skipped`` and never queued. So any file size works within
  Lambda's limits, and a crash resumes from the last checkpoint (SQS redelivers; after 5
  failures the job is in the dead-letter queue, alarmed).

One load of a campaign at a time, under a lease (``CampaignLoader``): the job that
continues a load carries the token of the invocation that handed over (``token``), which
lets it resume at once. Any other job (the S3 notification's second delivery, a second
file, a continuation whose lease ran out and was taken over) finds the campaign busy
while a lease runs and comes back in ``busy_retry_seconds`` without a token, until it
finds its upload ended (nothing to do) or the campaign free (it resumes the upload from
its checkpoint, so no upload is left half loaded).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from chatflow.domain.campaigns import CampaignLoader
from chatflow.observability import logger

_KEY = re.compile(r"^campaigns/(?P<campaign>[^/]+)/(?P<name>[^/]+)\.csv$")
_PRESIGNED = re.compile(r"^u_[0-9a-f]{32}$")
BUSY_RETRY_SECONDS = 30
# Leave this share of the invocation's time for the last chunk and the hand-over.
TIME_RESERVE = 0.3
ROWS_PER_BUDGET_CHECK = 100


class JobQueue(Protocol):
    """The campaign load queue (``chatflow.adapters.queues.SqsQueue``)."""

    def send(self, body: str, *, delay_seconds: int = 0) -> None: ...


@dataclass(frozen=True)
class LoadJob:
    """One load message: which upload of which campaign, its object, and a lease's token."""

    campaign_id: str
    upload_id: str
    key: str
    token: str | None = None

    @classmethod
    def of_message(cls, body: str) -> LoadJob:
        document: Mapping[str, Any] = json.loads(body)
        token = document.get("token")
        return cls(
            str(document["campaignId"]),
            str(document["uploadId"]),
            str(document["key"]),
            str(token) if token is not None else None,
        )

    def message(self) -> str:
        job = {"campaignId": self.campaign_id, "uploadId": self.upload_id, "key": self.key}
        return json.dumps(job | ({"token": self.token} if self.token is not None else {}))


def job_of_object(key: str, etag: str) -> LoadJob | None:
    """The load job of an object created in the bucket (its key already URL-decoded), or
    None when it is not a campaign upload."""
    found = _KEY.match(key)
    if found is None:
        return None
    name = found.group("name")
    # A presigned upload is named after its upload id; a file dropped in the bucket gets an
    # id from its key and content, so the same event twice is the same upload.
    upload_id = (
        name if _PRESIGNED.match(name) else "f_" + hashlib.sha256(f"{key}|{etag}".encode()).hexdigest()[:32]
    )
    return LoadJob(found.group("campaign"), upload_id, key)


class CampaignLoadJobs:
    def __init__(
        self,
        *,
        loader: CampaignLoader,
        queue: JobQueue,
        max_rows: int,
        busy_retry_seconds: int = BUSY_RETRY_SECONDS,
    ) -> None:
        self.loader = loader
        self._queue = queue
        self._max_rows = max_rows
        self.busy_retry_seconds = busy_retry_seconds

    def noticed(self, key: str, etag: str) -> None:
        """An object was created in the bucket: queue its load job, if it is an upload."""
        job = job_of_object(key, etag)
        if job is None:
            logger.warning("not a campaign upload; ignored", extra={"key": key})
            return
        self._queue.send(job.message())

    def run(self, job: LoadJob, remaining_ms: Callable[[], int]) -> None:
        """Load until the rows or the invocation's time (``remaining_ms``) run short, then hand over."""
        timeout_ms = remaining_ms()
        rows = 0

        def budget() -> bool:
            nonlocal rows
            rows += ROWS_PER_BUDGET_CHECK
            return rows < self._max_rows and remaining_ms() > timeout_ms * TIME_RESERVE

        loaded = self.loader.load(job.campaign_id, job.upload_id, job.key, budget=budget, holding=job.token)
        if loaded.done:
            upload = loaded.upload
            logger.info(
                "upload loaded",
                extra={
                    "job": job.message(),
                    "status": upload.status if upload else "no campaign",
                    "error": upload.error if upload else None,
                },
            )
            return
        # A busy job comes back without a token: whichever lease it had is no longer its own.
        plain = LoadJob(job.campaign_id, job.upload_id, job.key)
        logger.info(
            "load continues in another invocation", extra={"job": plain.message(), "busy": loaded.busy}
        )
        if loaded.busy or loaded.token is None:
            self._queue.send(plain.message(), delay_seconds=self.busy_retry_seconds)
        else:
            self._queue.send(LoadJob(job.campaign_id, job.upload_id, job.key, loaded.token).message())
