"""The fake SMS provider's failure model and the in-memory provider built on it."""

from __future__ import annotations

import re
import threading
from collections import Counter

import pytest

from chatflow.domain.sms import SmsRequest
from chatflow.errors import PermanentProviderError, ProviderError, TransientProviderError
from local.fake_sms import FailureModel, FakeSmsProvider, Fault, SentSms


def no_sleep(_: float) -> None:
    return None


def ordinary(n: int) -> str:
    """A number that is no magic destination (those end in 0400, 0503, 0429, 0408 or 0410)."""
    return f"+1415{n:06d}1"


def request(n: int = 1, to: str | None = None, reference: str | None = None) -> SmsRequest:
    return SmsRequest(
        to=to or ordinary(n), to_type="phone", text=f"message {n}", reference=reference or f"cmd_{n}"
    )


def outcome(provider: FakeSmsProvider, sms: SmsRequest) -> str:
    """The id, or the error's class and code: what a caller can observe of one send."""
    try:
        return provider.send(sms)
    except ProviderError as exc:
        return f"{type(exc).__name__}:{exc.code}"


def test_the_same_seed_gives_the_same_outcomes_ids_and_delays() -> None:
    # Given two providers with the same seed, failing half the time
    delays: tuple[list[float], list[float]] = ([], [])
    first = FakeSmsProvider(0.5, seed=7, sleep=delays[0].append)
    second = FakeSmsProvider(0.5, seed=7, sleep=delays[1].append)
    # When each sends the same 40 messages
    runs = [[outcome(p, request(n)) for n in range(40)] for p in (first, second)]
    # Then both saw the same ids, failures and delays, and some of each
    assert runs[0] == runs[1]
    assert delays[0] == delays[1]
    assert any(o.startswith("pm_") for o in runs[0])
    assert any("Error:" in o for o in runs[0])


def test_different_seeds_give_different_outcomes() -> None:
    # Given two failure models with different seeds
    first, second = FailureModel(0.5, seed=1), FailureModel(0.5, seed=2)
    # When each decides 50 sends
    decisions = [[model.decide(ordinary(n)) for n in range(50)] for model in (first, second)]
    # Then they differ
    assert decisions[0] != decisions[1]


def test_a_zero_failure_rate_never_fails() -> None:
    # Given a provider that never fails
    provider = FakeSmsProvider(0.0, seed=3, sleep=no_sleep)
    # When 500 ordinary messages are sent
    ids = [provider.send(request(n)) for n in range(500)]
    # Then all are accepted, with distinct ids
    assert len(set(ids)) == 500
    assert len(provider.sent) == 500


def test_a_full_failure_rate_always_fails_two_thirds_transient() -> None:
    # Given a failure model that fails every ordinary send
    model = FailureModel(1.0, seed=11)
    # When it decides 3000 sends
    faults = Counter(model.decide(ordinary(n)) for n in range(3000))
    # Then every one fails: about a third permanently, the rest split across the transient faults
    assert None not in faults
    assert 900 <= faults[Fault.INVALID_DESTINATION_400] <= 1100
    for transient in (Fault.UNAVAILABLE_503, Fault.RATE_LIMITED_429, Fault.TIMEOUT):
        assert 550 <= faults[transient] <= 800


def test_a_full_failure_rate_makes_the_provider_raise_both_kinds() -> None:
    # Given a provider that fails every ordinary send
    provider = FakeSmsProvider(1.0, seed=5, sleep=no_sleep)
    # When 60 messages are sent
    kinds = Counter(type(error).__name__ for error in _errors(provider, 60))
    # Then all failed, both transiently and permanently, and nothing was accepted
    assert sum(kinds.values()) == 60
    assert kinds["TransientProviderError"] > kinds["PermanentProviderError"] > 0
    assert provider.sent == []


def _errors(provider: FakeSmsProvider, count: int) -> list[ProviderError]:
    errors: list[ProviderError] = []
    for n in range(count):
        with pytest.raises(ProviderError) as caught:
            provider.send(request(n))
        errors.append(caught.value)
    return errors


@pytest.mark.parametrize(
    ("to", "fault"),
    [
        ("+15550000400", Fault.INVALID_DESTINATION_400),
        ("+15550000503", Fault.UNAVAILABLE_503),
        ("+15550000429", Fault.RATE_LIMITED_429),
        ("+15550000408", Fault.TIMEOUT),
        ("8944500102198300400", Fault.INVALID_DESTINATION_400),
        ("+1 555 000 0503", Fault.UNAVAILABLE_503),
    ],
)
def test_magic_destinations_always_fail_their_way(to: str, fault: Fault) -> None:
    # Given a failure model that would never fail an ordinary send
    model = FailureModel(0.0, seed=1)
    # When a send goes to a magic destination
    # Then it always gets that fault
    assert {model.decide(to) for _ in range(20)} == {fault}


def test_the_undelivered_destination_succeeds_with_an_undelivered_receipt() -> None:
    # Given a failure model that fails every ordinary send
    model = FailureModel(1.0, seed=1)
    # When a send goes to the 0410 destination
    decisions = {model.decide("+15550000410") for _ in range(20)}
    # Then it always succeeds, but its receipt says undelivered, unlike an ordinary number's
    assert decisions == {None}
    assert model.receipt_status("+15550000410") == "undelivered"
    assert model.receipt_status("+15550000411") == "delivered"


@pytest.mark.parametrize(
    ("to", "error", "code", "retry_after"),
    [
        ("+15550000400", PermanentProviderError, "invalid_destination", None),
        ("+15550000503", TransientProviderError, "unavailable", None),
        ("+15550000429", TransientProviderError, "rate_limited", 1),
        ("+15550000408", TransientProviderError, "provider_timeout", None),
    ],
)
def test_the_provider_raises_each_fault_as_the_http_adapter_would(
    to: str, error: type[ProviderError], code: str, retry_after: float | None
) -> None:
    # Given an in-memory provider
    provider = FakeSmsProvider(0.0, sleep=no_sleep)
    # When a message goes to a magic destination
    with pytest.raises(error) as caught:
        provider.send(request(to=to))
    # Then the error has the class, code and retry hint the HTTP adapter gives the real fault
    assert caught.value.code == code
    if isinstance(caught.value, TransientProviderError):
        assert caught.value.retry_after == retry_after


def test_an_accepted_message_gets_a_pm_hex_id_and_is_listed() -> None:
    # Given a provider that never fails
    provider = FakeSmsProvider(0.0, sleep=no_sleep)
    sms = request(1)
    # When a message is sent
    message_id = provider.send(sms)
    # Then its id is pm_<hex> and it is listed with that id
    assert re.fullmatch(r"pm_[0-9a-f]{32}", message_id)
    assert provider.sent == [SentSms(message_id, sms)]


def test_the_same_reference_again_returns_the_same_id_and_sends_nothing_new() -> None:
    # Given a message already accepted
    provider = FakeSmsProvider(0.0, sleep=no_sleep)
    message_id = provider.send(request(1, reference="cmd_x"))
    # When a message with the same reference is sent again
    again = provider.send(request(2, reference="cmd_x"))
    # Then the same id comes back, one message is listed, and both attempts are counted
    assert again == message_id
    assert len(provider.sent) == 1
    assert provider.attempts == {"cmd_x": 2}


def test_attempts_count_failures_per_reference() -> None:
    # Given a provider and a destination that is always unavailable
    provider = FakeSmsProvider(0.0, sleep=no_sleep)
    # When one command is tried three times and another once
    for _ in range(3):
        with pytest.raises(TransientProviderError):
            provider.send(request(to="+15550000503", reference="cmd_a"))
    provider.send(request(reference="cmd_b"))
    # Then each reference's attempts are counted, and only the success is listed
    assert provider.attempts == {"cmd_a": 3, "cmd_b": 1}
    assert [sent.request.reference for sent in provider.sent] == ["cmd_b"]


def test_concurrent_sends_of_one_reference_accept_it_once() -> None:
    # Given a provider with short real delays
    provider = FakeSmsProvider(0.0, seed=9, min_delay_ms=0, max_delay_ms=5)
    ids: list[str] = []
    sms = request(1, reference="cmd_same")

    def send() -> None:
        ids.append(provider.send(sms))

    # When 16 threads send the same reference at once
    threads = [threading.Thread(target=send) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Then every one got the same id and a single message was accepted
    assert len(set(ids)) == 1
    assert len(provider.sent) == 1
    assert provider.attempts == {"cmd_same": 16}


def test_default_delays_are_between_50_and_200_ms() -> None:
    # Given a provider with the default delays and a recording sleep
    delays: list[float] = []
    provider = FakeSmsProvider(0.0, seed=4, sleep=delays.append)
    # When 50 messages are sent
    for n in range(50):
        provider.send(request(n))
    # Then each waited between 0.05 and 0.2 s
    assert len(delays) == 50
    assert all(0.05 <= delay <= 0.2 for delay in delays)


def test_delays_can_be_shrunk_to_zero() -> None:
    # Given a provider whose delays are 0 ms
    delays: list[float] = []
    provider = FakeSmsProvider(0.0, min_delay_ms=0, max_delay_ms=0, sleep=delays.append)
    # When messages are sent
    for n in range(10):
        provider.send(request(n))
    # Then it never waited
    assert delays == []


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_a_failure_rate_outside_0_to_1_is_refused(rate: float) -> None:
    # Given a rate that is not a probability
    # When a failure model is built with it
    # Then it is refused
    with pytest.raises(ValueError, match="failure_rate"):
        FailureModel(rate)


def test_inverted_delays_are_refused() -> None:
    # Given a minimum delay above the maximum
    # When a provider is built with them
    # Then it is refused
    with pytest.raises(ValueError, match="min_delay_ms"):
        FakeSmsProvider(min_delay_ms=100, max_delay_ms=10)
