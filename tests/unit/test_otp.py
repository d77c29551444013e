"""Sign-in by SMS code (AuthMode=otp): codes, their limits, and signing in with them."""

from __future__ import annotations

import re
import string
from datetime import timedelta

import pytest

from chatflow.domain.clock import to_iso
from chatflow.domain.identity import IdentityService
from chatflow.domain.otp import (
    CODE_TTL,
    CODES_PER_HOUR,
    MAX_TRIES,
    InvalidCode,
    Verification,
    code_matches,
    generate_code,
    hash_code,
    normalize_code,
    seconds_until_allowed,
    sends_in_window,
    sms_text,
)
from chatflow.errors import ConcurrentUpdate, InvalidPhoneNumber, RateLimited, ValidationFailed
from tests.fakes import (
    EPOCH,
    FakeClock,
    FakeSessionRepository,
    FakeSmsCommandSender,
    FakeUserRepository,
    FakeVerificationRepository,
)
from tests.unit.conftest import ALICE, BOB, SESSION_TTL

CODE_IN_TEXT = re.compile(r"\b(\d{6})\b")
# The GSM 03.38 basic characters an SMS text of ours may use (a subset, enough here).
GSM7_SUBSET = set(string.ascii_letters + string.digits + " .,:;!?'-()")


class FixedRandom:
    """A ``secrets``-like source that returns the same number, and remembers the bound."""

    def __init__(self, value: int) -> None:
        self.value = value
        self.bounds: list[int] = []

    def randbelow(self, exclusive_upper_bound: int, /) -> int:
        self.bounds.append(exclusive_upper_bound)
        return self.value


class SequentialCodes:
    """Codes 100001, 100002, ...: distinct and predictable."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> str:
        self.count += 1
        return f"{100000 + self.count}"


@pytest.fixture
def otp_clock() -> FakeClock:
    return FakeClock(EPOCH)


@pytest.fixture
def verifications() -> FakeVerificationRepository:
    return FakeVerificationRepository()


@pytest.fixture
def sms() -> FakeSmsCommandSender:
    return FakeSmsCommandSender()


def otp_service(
    verifications: FakeVerificationRepository,
    sms: FakeSmsCommandSender,
    clock: FakeClock,
    users: FakeUserRepository | None = None,
) -> IdentityService:
    return IdentityService(
        users=users or FakeUserRepository(),
        sessions=FakeSessionRepository(),
        clock=clock,
        session_ttl=SESSION_TTL,
        operators=frozenset(),
        auth_mode="otp",
        verifications=verifications,
        sms=sms,
        new_code=SequentialCodes(),
    )


@pytest.fixture
def otp(
    verifications: FakeVerificationRepository, sms: FakeSmsCommandSender, otp_clock: FakeClock
) -> IdentityService:
    return otp_service(verifications, sms, otp_clock)


def last_code(sms: FakeSmsCommandSender) -> str:
    """The code in the text of the last SendSms command."""
    match = CODE_IN_TEXT.search(sms.commands[-1]["text"])
    assert match is not None, sms.commands[-1]
    return match.group(1)


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 1_000_000:06d}"


# ---- codes ---------------------------------------------------------------------------


def test_a_code_is_six_digits_and_keeps_its_leading_zeros() -> None:
    # Given a random source that draws 42
    rng = FixedRandom(42)
    # When a code is made from it
    code = generate_code(rng)
    # Then it is the 6 digits "000042", drawn from a million values
    assert code == "000042"
    assert rng.bounds == [1_000_000]


def test_codes_from_the_system_source_are_six_random_digits() -> None:
    # Given the default source (secrets)
    # When many codes are made
    codes = [generate_code() for _ in range(200)]
    # Then each is 6 digits, and they differ
    assert all(re.fullmatch(r"\d{6}", code) for code in codes)
    assert len(set(codes)) > 150


def test_the_hash_hides_the_code_and_depends_on_the_number() -> None:
    # Given one code for two numbers
    # When it is hashed
    alice, bob = hash_code(ALICE, "123456"), hash_code(BOB, "123456")
    # Then the hashes are hex SHA-256 sizes, differ per number and do not contain the code
    assert re.fullmatch(r"[0-9a-f]{64}", alice)
    assert alice != bob
    assert "123456" not in alice


def test_only_the_right_code_matches() -> None:
    # Given a pending code for Alice
    pending = Verification(ALICE, hash_code(ALICE, "123456"), EPOCH)
    # When codes are checked against it
    # Then only that code, for that number, matches
    assert code_matches(pending, "123456")
    assert not code_matches(pending, "123457")
    assert not code_matches(Verification(BOB, pending.code_hash, EPOCH), "123456")


def test_the_sms_text_is_one_gsm7_segment_with_the_code() -> None:
    # Given a code
    # When its SMS text is made
    text = sms_text("004217")
    # Then it fits one GSM-7 segment, carries the code and says when it expires
    assert len(text) <= 160
    assert set(text) <= GSM7_SUBSET
    assert "004217" in text
    assert "5 minutes" in text


@pytest.mark.parametrize("typed", ["123456", " 123 456 ", "123-456"])
def test_a_typed_code_keeps_only_its_digits(typed: str) -> None:
    # Given a code typed with spaces or a dash, When it is normalized, Then the digits remain
    assert normalize_code(typed) == "123456"


@pytest.mark.parametrize("typed", [None, "", "   ", "12345", "1234567", "12345a", "١٢٣٤٥٦"])
def test_a_missing_or_malformed_code_is_a_validation_error_on_the_code_field(typed: str | None) -> None:
    # Given no code, or text that is not 6 ASCII digits
    # When it is normalized
    with pytest.raises(ValidationFailed) as raised:
        normalize_code(typed)
    # Then the error names the code field
    assert [d.field for d in raised.value.details] == ["code"]


def test_the_rate_window_keeps_only_the_last_hours_sends() -> None:
    # Given sends just over, exactly at, and within an hour ago
    sent = [EPOCH - timedelta(minutes=61), EPOCH - timedelta(hours=1), EPOCH - timedelta(minutes=59)]
    # When the window at EPOCH is taken
    # Then only the send within the hour counts
    assert sends_in_window(sent, EPOCH) == [EPOCH - timedelta(minutes=59)]


def test_the_wait_is_until_the_oldest_send_leaves_the_window() -> None:
    # Given 5 sends, the oldest 50 minutes ago
    recent = [EPOCH - timedelta(minutes=50 - 10 * i) for i in range(5)]
    # When the wait for a sixth is computed
    # Then it is the 10 minutes until the oldest is an hour old; with a free slot, none
    assert seconds_until_allowed(recent, EPOCH, per_hour=5) == 600
    assert seconds_until_allowed(recent[1:], EPOCH, per_hour=5) == 0


# ---- starting a verification -----------------------------------------------------------


def test_starting_sends_the_code_by_sms(otp: IdentityService, sms: FakeSmsCommandSender) -> None:
    # Given a number written in a local format
    # When a code is asked for
    started = otp.start_verification("(415) 555-0101")
    # Then one transactional SendSms command carries the code to the E.164 number
    assert started == (ALICE, 300)
    [command] = sms.commands
    assert re.fullmatch(r"otp-[0-9a-f]{32}", command["commandId"])
    assert command["phoneNumber"] == ALICE
    assert command["text"] == sms_text(last_code(sms))
    assert command["messageType"] == "transactional"
    assert command["metadata"] == {"purpose": "sign-in"}


def test_the_code_is_valid_for_the_gateway_only_until_it_expires(
    otp: IdentityService, sms: FakeSmsCommandSender, otp_clock: FakeClock
) -> None:
    # A code stuck behind a campaign backlog is dropped once useless (SmsExpired), not sent late
    started_at = otp_clock()
    otp.start_verification(ALICE)
    [command] = sms.commands
    assert command["validUntil"] == to_iso(started_at + timedelta(seconds=300))


def test_only_the_hash_of_the_code_is_stored(
    otp: IdentityService, sms: FakeSmsCommandSender, verifications: FakeVerificationRepository
) -> None:
    # Given a code was sent
    otp.start_verification(ALICE)
    # When the stored verification is read
    stored = verifications.get(ALICE)
    # Then it holds the code's hash (not the code) and expires after 5 minutes
    assert stored is not None
    assert stored.code_hash == hash_code(ALICE, last_code(sms))
    assert last_code(sms) not in stored.code_hash
    assert stored.expires_at == EPOCH + CODE_TTL


def test_every_command_has_its_own_id(otp: IdentityService, sms: FakeSmsCommandSender) -> None:
    # Given two codes asked for the same number
    otp.start_verification(ALICE)
    otp.start_verification(ALICE)
    # When their commands are compared
    first, second = (c["commandId"] for c in sms.commands)
    # Then their ids (the gateway's idempotency keys) differ
    assert first != second


def test_an_invalid_number_gets_no_code(otp: IdentityService, sms: FakeSmsCommandSender) -> None:
    # Given text that is no phone number
    # When a code is asked for it
    with pytest.raises(InvalidPhoneNumber):
        otp.start_verification("not a phone")
    # Then nothing is sent
    assert sms.commands == []


def test_the_sixth_code_within_an_hour_is_rate_limited(
    otp: IdentityService, sms: FakeSmsCommandSender, otp_clock: FakeClock
) -> None:
    # Given 5 codes sent to a number, 10 minutes apart
    for _ in range(CODES_PER_HOUR):
        otp.start_verification(ALICE)
        otp_clock.advance(timedelta(minutes=10))
    # When a sixth is asked for, 50 minutes after the first
    with pytest.raises(RateLimited) as raised:
        otp.start_verification(ALICE)
    # Then it is refused until the first is an hour old, and no SMS goes out
    assert raised.value.retry_after_seconds == 600
    assert len(sms.commands) == CODES_PER_HOUR


def test_a_rate_limited_request_keeps_the_pending_code(
    otp: IdentityService, sms: FakeSmsCommandSender
) -> None:
    # Given a number that used up its codes for the hour
    for _ in range(CODES_PER_HOUR):
        otp.start_verification(ALICE)
    code = last_code(sms)
    with pytest.raises(RateLimited):
        otp.start_verification(ALICE)
    # When the last code sent is used
    signed = otp.sign_in(ALICE, code)
    # Then it still works
    assert signed.user.phone_number == ALICE


def test_a_code_may_be_asked_for_again_once_the_oldest_leaves_the_hour(
    otp: IdentityService, sms: FakeSmsCommandSender, otp_clock: FakeClock
) -> None:
    # Given 5 codes sent at once, and the 6th refused
    for _ in range(CODES_PER_HOUR):
        otp.start_verification(ALICE)
    with pytest.raises(RateLimited) as raised:
        otp.start_verification(ALICE)
    # When the Retry-After time has passed
    otp_clock.advance(timedelta(seconds=raised.value.retry_after_seconds))
    otp.start_verification(ALICE)
    # Then a code goes out
    assert len(sms.commands) == CODES_PER_HOUR + 1


def test_the_limit_is_per_number(otp: IdentityService, sms: FakeSmsCommandSender) -> None:
    # Given Alice used up her codes for the hour
    for _ in range(CODES_PER_HOUR):
        otp.start_verification(ALICE)
    # When Bob asks for one
    otp.start_verification(BOB)
    # Then his goes out
    assert sms.commands[-1]["phoneNumber"] == BOB


# ---- signing in with a code ------------------------------------------------------------


def test_the_right_code_signs_in_and_creates_the_user(
    otp: IdentityService, sms: FakeSmsCommandSender
) -> None:
    # Given a code sent to a new number
    otp.start_verification(ALICE)
    # When it is used to sign in
    signed = otp.sign_in("+1 415 555 0101", last_code(sms))
    # Then a session starts for a new user of that number
    assert signed.user.phone_number == ALICE
    assert otp.authenticate(signed.issued.token).phone_number == ALICE


def test_a_code_works_only_once(otp: IdentityService, sms: FakeSmsCommandSender) -> None:
    # Given a code already used to sign in
    otp.start_verification(ALICE)
    code = last_code(sms)
    otp.sign_in(ALICE, code)
    # When it is used again
    # Then it is refused
    with pytest.raises(InvalidCode):
        otp.sign_in(ALICE, code)


def test_a_typed_code_with_spaces_signs_in(otp: IdentityService, sms: FakeSmsCommandSender) -> None:
    # Given a code sent
    otp.start_verification(ALICE)
    code = last_code(sms)
    # When it is typed as "123 456"
    signed = otp.sign_in(ALICE, f"{code[:3]} {code[3:]}")
    # Then it signs in
    assert signed.user.phone_number == ALICE


def test_a_wrong_code_is_refused_and_counted(
    otp: IdentityService, sms: FakeSmsCommandSender, verifications: FakeVerificationRepository
) -> None:
    # Given a code sent
    otp.start_verification(ALICE)
    # When a wrong code is tried
    with pytest.raises(InvalidCode) as raised:
        otp.sign_in(ALICE, wrong(last_code(sms)))
    # Then it is refused with the tries left, and the try is counted
    assert raised.value.code == "invalid_code"
    assert "4 tries left" in raised.value.message
    stored = verifications.get(ALICE)
    assert stored is not None
    assert stored.failed_tries == 1


def test_the_right_code_still_works_after_fewer_than_five_wrong_tries(
    otp: IdentityService, sms: FakeSmsCommandSender
) -> None:
    # Given 4 wrong tries
    otp.start_verification(ALICE)
    code = last_code(sms)
    for _ in range(MAX_TRIES - 1):
        with pytest.raises(InvalidCode):
            otp.sign_in(ALICE, wrong(code))
    # When the right code is tried
    signed = otp.sign_in(ALICE, code)
    # Then it signs in
    assert signed.user.phone_number == ALICE


def test_the_fifth_wrong_try_burns_the_code(
    otp: IdentityService, sms: FakeSmsCommandSender, verifications: FakeVerificationRepository
) -> None:
    # Given 4 wrong tries
    otp.start_verification(ALICE)
    code = last_code(sms)
    for _ in range(MAX_TRIES - 1):
        with pytest.raises(InvalidCode):
            otp.sign_in(ALICE, wrong(code))
    # When a fifth wrong code is tried
    with pytest.raises(InvalidCode) as raised:
        otp.sign_in(ALICE, wrong(code))
    # Then the code is deleted, the message says to ask for a new one, and even the right
    # code fails now
    assert verifications.get(ALICE) is None
    assert "new one" in raised.value.message
    with pytest.raises(InvalidCode):
        otp.sign_in(ALICE, code)


def test_a_code_whose_tries_were_used_up_concurrently_is_refused(
    otp: IdentityService, sms: FakeSmsCommandSender, verifications: FakeVerificationRepository
) -> None:
    # Given a code whose count already reached the limit (concurrent guesses not yet
    # deleted it)
    otp.start_verification(ALICE)
    pending = verifications.pending[ALICE]
    verifications.pending[ALICE] = Verification(
        ALICE, pending.code_hash, pending.expires_at, failed_tries=MAX_TRIES
    )
    # When the right code is tried
    # Then it is refused: no more than MAX_TRIES tries are ever compared
    with pytest.raises(InvalidCode):
        otp.sign_in(ALICE, last_code(sms))


def test_a_code_used_by_a_concurrent_request_is_refused(
    sms: FakeSmsCommandSender, otp_clock: FakeClock
) -> None:
    # Given a store where another request uses the code between our read and our count
    class RacedVerifications(FakeVerificationRepository):
        def record_failure(self, phone_number: str) -> int:
            self.pending.pop(phone_number)
            return super().record_failure(phone_number)

    service = otp_service(RacedVerifications(), sms, otp_clock)
    service.start_verification(ALICE)
    # When the right code is tried
    # Then it is refused as invalid (not a server error)
    with pytest.raises(InvalidCode):
        service.sign_in(ALICE, last_code(sms))


def test_an_expired_code_is_refused(
    otp: IdentityService, sms: FakeSmsCommandSender, otp_clock: FakeClock
) -> None:
    # Given a code sent 5 minutes ago
    otp.start_verification(ALICE)
    otp_clock.advance(CODE_TTL)
    # When it is used
    # Then it is refused
    with pytest.raises(InvalidCode):
        otp.sign_in(ALICE, last_code(sms))


def test_a_code_works_until_just_before_it_expires(
    otp: IdentityService, sms: FakeSmsCommandSender, otp_clock: FakeClock
) -> None:
    # Given a code sent almost 5 minutes ago
    otp.start_verification(ALICE)
    otp_clock.advance(CODE_TTL - timedelta(seconds=1))
    # When it is used
    signed = otp.sign_in(ALICE, last_code(sms))
    # Then it signs in
    assert signed.user.phone_number == ALICE


def test_a_new_code_replaces_the_earlier_one(otp: IdentityService, sms: FakeSmsCommandSender) -> None:
    # Given two codes sent one after the other
    otp.start_verification(ALICE)
    first = last_code(sms)
    otp.start_verification(ALICE)
    second = last_code(sms)
    # When the first is used
    # Then it is refused, and the second works
    with pytest.raises(InvalidCode):
        otp.sign_in(ALICE, first)
    assert otp.sign_in(ALICE, second).user.phone_number == ALICE


def test_no_code_sent_means_no_sign_in(otp: IdentityService) -> None:
    # Given a number that never asked for a code
    # When it signs in with a guess
    # Then it is refused
    with pytest.raises(InvalidCode):
        otp.sign_in(ALICE, "123456")


def test_a_code_for_another_number_is_refused(otp: IdentityService, sms: FakeSmsCommandSender) -> None:
    # Given codes sent to Alice and Bob
    otp.start_verification(ALICE)
    alices = last_code(sms)
    otp.start_verification(BOB)
    # When Bob signs in with Alice's code
    # Then he is refused
    with pytest.raises(InvalidCode):
        otp.sign_in(BOB, alices)


@pytest.mark.parametrize("code", [None, "12345"])
def test_a_missing_or_malformed_code_is_not_counted(
    otp: IdentityService, verifications: FakeVerificationRepository, code: str | None
) -> None:
    # Given a code sent
    otp.start_verification(ALICE)
    # When signing in without a code, or with 5 digits
    with pytest.raises(ValidationFailed) as raised:
        otp.sign_in(ALICE, code)
    # Then it is a validation error on the code field, and no try is counted
    assert [d.field for d in raised.value.details] == ["code"]
    stored = verifications.get(ALICE)
    assert stored is not None
    assert stored.failed_tries == 0


def test_signing_in_again_with_a_new_code_keeps_the_user(
    otp: IdentityService, sms: FakeSmsCommandSender
) -> None:
    # Given a user who signed in with a code
    otp.start_verification(ALICE)
    first = otp.sign_in(ALICE, last_code(sms))
    # When they sign in again with a new code
    otp.start_verification(ALICE)
    second = otp.sign_in(ALICE, last_code(sms))
    # Then it is the same user
    assert second.user.user_id == first.user.user_id


# ---- wiring ------------------------------------------------------------------------------


def test_otp_mode_needs_its_ports(otp_clock: FakeClock) -> None:
    # Given no verification repository or SMS sender
    # When an otp-mode service is built
    # Then it fails at once, not at the first request
    with pytest.raises(ValueError, match="otp"):
        IdentityService(
            users=FakeUserRepository(),
            sessions=FakeSessionRepository(),
            clock=otp_clock,
            session_ttl=SESSION_TTL,
            operators=frozenset(),
            auth_mode="otp",
        )


def test_the_delete_of_a_gone_code_is_a_conflict(verifications: FakeVerificationRepository) -> None:
    # Given no pending code
    # When it is deleted or counted
    # Then the fake answers like the adapter's conditions
    with pytest.raises(ConcurrentUpdate):
        verifications.delete(ALICE)
    with pytest.raises(ConcurrentUpdate):
        verifications.record_failure(ALICE)
