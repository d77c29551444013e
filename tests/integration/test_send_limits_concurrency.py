"""Concurrent sends of one user never pass more than the burst (CONTRACT §7).

As in test_concurrency.py, every invocation runs in a worker process of its own (an
execution environment) against the emulated AWS server, with requests from several
threads at once; they meet only in DynamoDB, where a send's transaction moves its sender's
TAT only if it is still the one the send read. The rate is so low (one message every
100 s) that nothing refills while a round runs: exactly the burst passes.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial

import pytest

from local.apigw import HttpResult
from tests.integration.conftest import ApiClient
from tests.integration.test_concurrency import WorkerStack, most_at_once, run_together, worker_api

BURST = 5
ROUNDS = 6
SENDS = 12


@pytest.fixture(scope="module")
def limited_api() -> Iterator[ApiClient]:
    with worker_api(
        {"AuthMode": "phone", "UserSendRatePerSecond": "0.01", "UserSendBurst": str(BURST)}
    ) as api:
        yield api


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_concurrent_sends_of_one_user_never_pass_more_than_the_burst(
    limited_api: ApiClient, round_: int
) -> None:
    # Given a user new to this round, in a group and a direct chat
    api = limited_api
    sender = f"+1415555{5000 + 10 * round_:04d}"
    others = [f"+1415555{5001 + 10 * round_:04d}", f"+1415555{5002 + 10 * round_:04d}"]
    token = api.sign_in(sender)
    group = api.create_group(token, others)
    direct = api.open_direct(token, others[0])

    # When she sends 12 messages at the same moment, over both chats and both send routes
    def send(n: int) -> HttpResult:
        cmid = f"r{round_}-m{n}"
        if n % 3 == 0:
            body = {"to": others[1], "text": f"direct {n}", "clientMessageId": cmid}
            return api.call("POST", "/v1/messages", body, token=token)
        return api.send(token, group if n % 3 == 1 else direct, f"message {n}", cmid)

    assert isinstance(api.stack, WorkerStack)
    first = len(api.stack.invocations)
    responses = run_together([partial(send, n) for n in range(SENDS)])
    # (the sends really ran at the same time, in separate execution environments)
    assert most_at_once([i for i in api.stack.invocations[first:] if i.function == "ChatsFunction"]) > 1

    # Then exactly the burst is stored and every other send is a 429 with Retry-After
    statuses = sorted(r.status for r in responses)
    assert statuses == [201] * BURST + [429] * (SENDS - BURST), [(r.status, r.body) for r in responses]
    for refused in (r for r in responses if r.status == 429):
        assert refused.json()["error"]["code"] == "rate_limited"
        assert int({k.lower(): v for k, v in refused.headers.items()}["retry-after"]) >= 1

    # And the chats hold exactly the stored ones
    stored = {r.json()["clientMessageId"] for r in responses if r.status == 201}
    chats = api.call("GET", "/v1/chats", token=token).json()["items"]
    in_history = set()
    for chat in chats:
        page = api.call("GET", f"/v1/chats/{chat['chatId']}/messages", token=token, query={"limit": 100})
        in_history |= {m["clientMessageId"] for m in page.json()["items"]}
    assert in_history == stored
