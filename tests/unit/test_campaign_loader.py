"""Loading a campaign's uploaded CSV (CampaignLoader) and its queue jobs (CampaignLoadJobs), on fakes."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from chatflow.application.campaign_loading import CampaignLoadJobs, LoadJob, job_of_object
from chatflow.domain.campaigns import Campaign, CampaignLoader, Counts
from chatflow.errors import Throttled
from tests.fakes import EPOCH, FakeCampaignRepository, FakeClock, FakeRecipientFiles, FakeSmsCommandSender
from tests.sms_fakes import InMemoryOptOuts, InMemoryQueue
from tests.unit.conftest import OPERATOR

CID = "c_1"
KEY = f"campaigns/{CID}/u_0123456789abcdef0123456789abcdef.csv"
UPLOAD = "u_0123456789abcdef0123456789abcdef"


def iccid(n: int) -> str:
    return f"89{n:017d}"


def csv(*rows: str) -> bytes:
    return ("iccid,name\n" + "".join(f"{row}\n" for row in rows)).encode()


class Loading:
    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.campaigns = FakeCampaignRepository()
        self.files = FakeRecipientFiles(chunk_size=50)
        self.commands = FakeSmsCommandSender()
        self.opt_outs = InMemoryOptOuts()
        self.loader = CampaignLoader(
            campaigns=self.campaigns,
            files=self.files,
            commands=self.commands,
            opt_outs=self.opt_outs,
            clock=clock,
        )
        self.campaigns.create(
            Campaign(CID, "launch", "Hi {{name}}", ("name",), None, "draft", Counts(), None, EPOCH, OPERATOR)
        )

    def command_ids(self) -> list[str]:
        return [_field(c, "commandId", "command_id") for c in self.commands.commands]


def _field(command: Any, key: str, attribute: str) -> str:
    """A queued command's field, whether the queue takes dicts or command models."""
    return str(command[key] if isinstance(command, dict) else getattr(command, attribute))


def always() -> bool:
    return True


def rows_budget(calls: int) -> Callable[[], bool]:
    left = [calls]

    def budget() -> bool:
        left[0] -= 1
        return left[0] > 0

    return budget


@pytest.fixture
def w(clock: FakeClock) -> Loading:
    return Loading(clock)


def test_given_an_upload_when_loaded_then_each_recipient_is_queued_once_and_counted(w: Loading) -> None:
    w.files.objects[KEY] = csv(f"{iccid(1)},Ada", f"{iccid(2)},Bob")

    loaded = w.loader.load(CID, UPLOAD, KEY, budget=always)

    assert loaded.done
    assert loaded.upload is not None
    assert loaded.upload.status == "accepted"
    assert w.command_ids() == [f"cmp-{CID}-{iccid(1)}", f"cmp-{CID}-{iccid(2)}"]
    campaign = w.campaigns.get(CID)
    assert campaign is not None
    assert (campaign.counts.total, campaign.counts.queued, campaign.status) == (2, 2, "sending")


def test_given_an_opted_out_iccid_when_loaded_then_it_is_skipped_and_never_queued(w: Loading) -> None:
    w.opt_outs.destinations.add(iccid(1))
    w.files.objects[KEY] = csv(f"{iccid(1)},Ada", f"{iccid(2)},Bob")

    w.loader.load(CID, UPLOAD, KEY, budget=always)

    assert w.command_ids() == [f"cmp-{CID}-{iccid(2)}"]
    assert w.campaigns.recipients[(CID, iccid(1))].status == "skipped"


def test_given_a_repeated_iccid_when_loaded_then_it_is_one_recipient_and_a_duplicate(w: Loading) -> None:
    w.files.objects[KEY] = csv(f"{iccid(1)},Ada", f"{iccid(1)},Ada again")

    loaded = w.loader.load(CID, UPLOAD, KEY, budget=always)

    assert loaded.upload is not None
    assert (loaded.upload.accepted, loaded.upload.duplicates) == (1, 1)
    assert len(w.command_ids()) == 1


def test_given_a_file_without_rows_when_loaded_then_the_upload_is_rejected(w: Loading) -> None:
    w.files.objects[KEY] = csv()

    loaded = w.loader.load(CID, UPLOAD, KEY, budget=always)

    assert loaded.done
    assert loaded.upload is not None
    assert loaded.upload.status == "rejected"
    assert w.commands.commands == []


def test_given_a_spent_budget_when_loading_then_it_hands_over_and_the_next_job_resumes(w: Loading) -> None:
    # Given 250 rows, and a budget of one chunk (100 rows) per invocation
    w.files.objects[KEY] = csv(*(f"{iccid(i)},N" for i in range(250)))

    # When the first invocation loads, Then it stops with a token for its continuation
    first = w.loader.load(CID, UPLOAD, KEY, budget=rows_budget(1))
    assert not first.done
    assert first.token is not None
    assert len(w.command_ids()) == 100

    # When the continuation presents the token, Then it resumes from the checkpoint to the end
    second = w.loader.load(CID, UPLOAD, KEY, budget=always, holding=first.token)
    assert second.done
    assert sorted(w.command_ids()) == sorted(f"cmp-{CID}-{iccid(i)}" for i in range(250))


def test_given_a_load_holding_the_campaign_when_another_job_comes_then_it_is_busy(w: Loading) -> None:
    # Given a load that handed over (its lease still runs)
    w.files.objects[KEY] = csv(*(f"{iccid(i)},N" for i in range(150)))
    w.loader.load(CID, UPLOAD, KEY, budget=rows_budget(1))

    # When a job without the token comes (S3's second notification)
    again = w.loader.load(CID, UPLOAD, KEY, budget=always)

    # Then it finds the campaign busy and queues nothing
    assert (again.done, again.busy) == (False, True)
    assert len(w.command_ids()) == 100


def test_given_a_lease_run_out_when_another_job_comes_then_it_takes_over_from_the_checkpoint(
    w: Loading,
) -> None:
    # Given a load that stopped (crashed) after its first chunk
    w.files.objects[KEY] = csv(*(f"{iccid(i)},N" for i in range(150)))
    w.loader.load(CID, UPLOAD, KEY, budget=rows_budget(1))

    # When a job comes after the lease ran out
    w.clock.advance(timedelta(minutes=3))
    taken = w.loader.load(CID, UPLOAD, KEY, budget=always)

    # Then it finishes the upload, each recipient queued once
    assert taken.done
    assert len(set(w.command_ids())) == len(w.command_ids()) == 150


def test_given_the_queue_fails_mid_load_when_retried_then_no_recipient_is_lost(w: Loading) -> None:
    # Given a queue that refuses the first batch
    w.files.objects[KEY] = csv(f"{iccid(1)},Ada")
    w.commands.fail = Throttled("queue down")
    with pytest.raises(Throttled):
        w.loader.load(CID, UPLOAD, KEY, budget=always)

    # When the job is redelivered after the lease ran out
    w.clock.advance(timedelta(minutes=3))
    loaded = w.loader.load(CID, UPLOAD, KEY, budget=always)

    # Then the recipient's command is queued and counted once
    assert loaded.done
    assert w.command_ids() == [f"cmp-{CID}-{iccid(1)}"]
    campaign = w.campaigns.get(CID)
    assert campaign is not None
    assert campaign.counts.queued == 1


# ---- the jobs -----------------------------------------------------------------------------


def test_given_a_presigned_upload_key_when_noticed_then_its_job_names_the_upload() -> None:
    assert job_of_object(KEY, "etag") == LoadJob(CID, UPLOAD, KEY)


def test_given_a_file_dropped_in_the_bucket_when_noticed_twice_then_it_is_the_same_upload() -> None:
    key = f"campaigns/{CID}/november launch.csv"

    first, second = job_of_object(key, "e1"), job_of_object(key, "e1")

    assert first is not None
    assert first == second
    assert first.upload_id.startswith("f_")
    assert len(first.upload_id) == 34


def test_given_an_object_outside_campaigns_when_noticed_then_no_job_is_queued() -> None:
    queue = InMemoryQueue()
    jobs = CampaignLoadJobs(loader=Loading(FakeClock()).loader, queue=queue, max_rows=1000)

    jobs.noticed("exports/report.csv", "etag")

    assert queue.sent == []


def test_given_an_upload_when_its_load_hands_over_then_the_next_job_carries_the_token(w: Loading) -> None:
    # Given 250 rows and a budget of 100 rows per invocation
    w.files.objects[KEY] = csv(*(f"{iccid(i)},N" for i in range(250)))
    queue = InMemoryQueue()
    jobs = CampaignLoadJobs(loader=w.loader, queue=queue, max_rows=100)

    # When the job runs
    jobs.run(LoadJob(CID, UPLOAD, KEY), lambda: 10_000)

    # Then its continuation is queued at once, with the lease's token
    [(body, delay)] = queue.sent
    job = json.loads(body)
    assert (job["campaignId"], job["uploadId"], job["key"], delay) == (CID, UPLOAD, KEY, 0)
    assert job["token"]


def test_given_a_busy_campaign_when_a_job_runs_then_it_comes_back_later_without_a_token(w: Loading) -> None:
    # Given a load holding the campaign
    w.files.objects[KEY] = csv(*(f"{iccid(i)},N" for i in range(150)))
    w.loader.load(CID, UPLOAD, KEY, budget=rows_budget(1))
    queue = InMemoryQueue()
    jobs = CampaignLoadJobs(loader=w.loader, queue=queue, max_rows=1000, busy_retry_seconds=30)

    # When another job runs
    jobs.run(LoadJob(CID, UPLOAD, KEY), lambda: 10_000)

    # Then it is queued again in 30 s, without a token
    [(body, delay)] = queue.sent
    assert delay == 30
    assert "token" not in json.loads(body)
