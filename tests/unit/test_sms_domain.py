"""SMS rules: segments, command and delivery statuses, retry delays, STOP/START/HELP keywords, signatures."""

from __future__ import annotations

import hashlib
import hmac
import math
import random
import unicodedata

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from chatflow.domain.sms import (
    HELP_KEYWORDS,
    OPT_IN_KEYWORDS,
    OPT_OUT_KEYWORDS,
    CommandStatus,
    DeliveryStatus,
    Encoding,
    RetryPolicy,
    Segments,
    can_move,
    delivery_can_move,
    inbound_keyword,
    opt_keyword,
    segments,
    sign,
    signature_matches,
)

# Written out again from GSM 03.38 rather than imported, so a slip in the module's table shows.
GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENSION = "\f^{}\\[~]|€"
GSM_ALL = frozenset(GSM_BASIC + GSM_EXTENSION)
SQS_MAX_DELAY = 43_200

gsm_basic_text = st.text(alphabet=GSM_BASIC)
gsm_text = st.text(alphabet=GSM_BASIC + GSM_EXTENSION, max_size=800)
non_gsm_char = st.characters(codec="utf-8").filter(lambda c: c not in GSM_ALL)
any_text = st.text(st.characters(codec="utf-8"), max_size=400)
# Rich enough for UCS-2: Cyrillic (BMP, not GSM) and emoji (outside the BMP).
UCS2_ALPHABET = "жЖяé a😀🎉𝄞"


def _has_non_gsm(text: str) -> bool:
    return any(c not in GSM_ALL for c in text)


ucs2_text = st.text(alphabet=UCS2_ALPHABET, min_size=1, max_size=400).filter(_has_non_gsm)
long_text = st.one_of(
    st.text(alphabet=GSM_BASIC + GSM_EXTENSION, min_size=161, max_size=800),
    st.text(alphabet=UCS2_ALPHABET, min_size=71, max_size=400).filter(_has_non_gsm),
    st.text(st.characters(codec="utf-8"), min_size=161, max_size=400),
)


def _per_part(encoding: Encoding) -> int:
    return 153 if encoding is Encoding.GSM7 else 67


def _cost(char: str, encoding: Encoding) -> int:
    if encoding is Encoding.GSM7:
        return 2 if char in GSM_EXTENSION else 1
    return _utf16_units(char)


def _split(text: str) -> list[str]:
    """Cut ``text`` greedily into parts no longer than one part of a long message allows."""
    encoding = segments(text).encoding
    limit = _per_part(encoding)
    parts: list[str] = []
    current, used = "", 0
    for char in text:
        cost = _cost(char, encoding)
        if current and used + cost > limit:
            parts.append(current)
            current, used = "", 0
        current, used = current + char, used + cost
    return [*parts, current]


def _utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


# --- segments: concrete examples -------------------------------------------------------


def test_empty_text_is_one_empty_gsm7_part() -> None:
    assert segments("") == Segments(Encoding.GSM7, count=1, units=0)


@pytest.mark.parametrize(
    ("length", "parts"), [(1, 1), (160, 1), (161, 2), (306, 2), (307, 3), (459, 3), (460, 4)]
)
def test_gsm7_text_of_basic_characters_takes_160_alone_and_153_per_part_when_split(
    length: int, parts: int
) -> None:
    result = segments("a" * length)

    assert result == Segments(Encoding.GSM7, count=parts, units=length)


def test_an_extension_character_counts_two_septets() -> None:
    assert segments("{€}") == Segments(Encoding.GSM7, count=1, units=6)


def test_form_feed_is_an_extension_character() -> None:
    assert segments("a\fb") == Segments(Encoding.GSM7, count=1, units=4)


def test_a_single_part_holds_160_septets_even_with_an_extension_character_past_153() -> None:
    # Given 152 basic characters and a euro sign: 154 septets
    text = "a" * 152 + "€"

    # When it is counted / Then it still fits one part (a lone part holds 160)
    assert segments(text) == Segments(Encoding.GSM7, count=1, units=154)


def test_gsm7_text_of_161_septets_because_of_an_extension_character_needs_two_parts() -> None:
    assert segments("a" * 159 + "€") == Segments(Encoding.GSM7, count=2, units=161)


def test_an_extension_character_that_would_straddle_the_153rd_septet_moves_to_the_next_part() -> None:
    # Given a long message whose euro sign would take septets 153 and 154
    text = "a" * 152 + "€" + "a" * 152

    # When it is counted
    result = segments(text)

    # Then the euro opens part 2, which fills up, and the last character needs a third part,
    # although 306 septets would fit two parts of 153
    assert result == Segments(Encoding.GSM7, count=3, units=306)
    assert _split(text) == ["a" * 152, "€" + "a" * 151, "a"]


def test_an_extension_character_that_ends_exactly_at_septet_153_stays_in_its_part() -> None:
    assert segments("a" * 151 + "€" + "a" * 153) == Segments(Encoding.GSM7, count=2, units=306)


@pytest.mark.parametrize(("length", "parts"), [(1, 1), (70, 1), (71, 2), (134, 2), (135, 3)])
def test_ucs2_text_takes_70_alone_and_67_per_part_when_split(length: int, parts: int) -> None:
    result = segments("ж" * length)

    assert result == Segments(Encoding.UCS2, count=parts, units=length)


def test_one_character_outside_gsm7_makes_the_whole_text_ucs2() -> None:
    assert segments("a" * 100 + "ж") == Segments(Encoding.UCS2, count=2, units=101)


def test_lowercase_c_cedilla_is_not_gsm7_although_the_capital_is() -> None:
    assert segments("Ç").encoding is Encoding.GSM7
    assert segments("ç").encoding is Encoding.UCS2


def test_the_escape_code_itself_is_not_a_character_of_gsm7() -> None:
    assert segments("\x1b").encoding is Encoding.UCS2


def test_an_emoji_outside_the_bmp_counts_two_utf16_units() -> None:
    assert segments("😀") == Segments(Encoding.UCS2, count=1, units=2)


def test_35_emoji_fill_exactly_one_part() -> None:
    assert segments("😀" * 35) == Segments(Encoding.UCS2, count=1, units=70)


def test_36_emoji_take_two_parts_of_33_and_3_because_a_pair_is_never_split() -> None:
    assert segments("😀" * 36) == Segments(Encoding.UCS2, count=2, units=72)
    assert [len(part) for part in _split("😀" * 36)] == [33, 3]


def test_an_emoji_that_would_straddle_the_67th_unit_moves_to_the_next_part() -> None:
    # Given a long message whose emoji would take units 67 and 68
    text = "ж" * 66 + "😀" + "ж" * 66

    # When it is counted / Then it needs three parts although 134 units fit two of 67
    assert segments(text) == Segments(Encoding.UCS2, count=3, units=134)


# --- segments: properties --------------------------------------------------------------


@given(text=gsm_basic_text)
def test_gsm7_text_of_n_basic_characters_follows_the_formula(text: str) -> None:
    n = len(text)

    result = segments(text)

    assert result.encoding is Encoding.GSM7
    assert result.units == n
    assert result.count == (1 if n <= 160 else math.ceil(n / 153))


@given(text=gsm_text)
def test_gsm7_units_count_two_per_extension_character(text: str) -> None:
    result = segments(text)

    assert result.encoding is Encoding.GSM7
    assert result.units == len(text) + sum(1 for c in text if c in GSM_EXTENSION)


@given(prefix=gsm_text, char=non_gsm_char, suffix=gsm_text)
def test_any_text_with_a_character_outside_gsm7_is_ucs2(prefix: str, char: str, suffix: str) -> None:
    text = prefix + char + suffix

    result = segments(text)

    assert result.encoding is Encoding.UCS2
    assert result.units == _utf16_units(text)


@settings(max_examples=200)
@given(text=st.one_of(gsm_text, ucs2_text, any_text))
def test_part_count_is_never_below_the_minimum_possible_nor_above_what_one_lost_unit_per_part_allows(
    text: str,
) -> None:
    # Given any text
    # When it is counted
    result = segments(text)

    # Then a single part is used while the text fits one, otherwise at least
    # ceil(units / per_part), and each full part wastes at most one unit (a moved pair)
    single = 160 if result.encoding is Encoding.GSM7 else 70
    per_part = _per_part(result.encoding)
    if result.units <= single:
        assert result.count == 1
    else:
        assert result.count >= math.ceil(result.units / per_part)
        assert (result.count - 1) * (per_part - 1) < result.units


@settings(max_examples=200)
@given(text=long_text)
def test_a_long_text_splits_into_as_many_parts_as_counted_and_every_part_fits(text: str) -> None:
    # Given any text long enough to be split
    result = segments(text)

    # When it is cut greedily at the per-part limit
    parts = _split(text)

    # Then the parts rebuild the text, each fits, none splits a character, and they are as many as counted
    assert "".join(parts) == text
    assert all(sum(_cost(c, result.encoding) for c in part) <= _per_part(result.encoding) for part in parts)
    assert len(parts) == result.count


@given(text=ucs2_text)
def test_ucs2_units_are_utf16_code_units(text: str) -> None:
    assert segments(text).units == _utf16_units(text)


# --- command statuses --------------------------------------------------------------------


@pytest.mark.parametrize("new", list(CommandStatus))
def test_a_command_without_a_record_may_take_any_status(new: CommandStatus) -> None:
    assert can_move(None, new)


@pytest.mark.parametrize(
    ("old", "new", "allowed"),
    [
        (CommandStatus.RECEIVED, CommandStatus.RECEIVED, False),
        (CommandStatus.RECEIVED, CommandStatus.SENDING, True),
        (CommandStatus.RECEIVED, CommandStatus.SENT, True),
        (CommandStatus.RECEIVED, CommandStatus.FAILED, True),
        (CommandStatus.SENDING, CommandStatus.RECEIVED, False),
        (CommandStatus.SENDING, CommandStatus.SENDING, True),
        (CommandStatus.SENDING, CommandStatus.SENT, True),
        (CommandStatus.SENDING, CommandStatus.FAILED, True),
    ],
)
def test_a_command_status_moves_only_forward_and_a_retry_stays_sending(
    old: CommandStatus, new: CommandStatus, allowed: bool
) -> None:
    assert can_move(old, new) is allowed


@pytest.mark.parametrize("old", [CommandStatus.SENT, CommandStatus.FAILED])
@pytest.mark.parametrize("new", list(CommandStatus))
def test_a_sent_or_failed_command_never_moves_not_even_to_itself(
    old: CommandStatus, new: CommandStatus
) -> None:
    assert not can_move(old, new)


@given(proposals=st.lists(st.sampled_from(list(CommandStatus)), max_size=30))
def test_applying_only_allowed_moves_never_goes_back_nor_leaves_a_final_status(
    proposals: list[CommandStatus],
) -> None:
    # Given any sequence of proposed statuses (duplicates, reorderings, late retries)
    rank = {
        CommandStatus.RECEIVED: 0,
        CommandStatus.SENDING: 1,
        CommandStatus.SENT: 2,
        CommandStatus.FAILED: 2,
    }
    status: CommandStatus | None = None

    # When each allowed one is applied
    for new in proposals:
        if not can_move(status, new):
            continue
        # Then no move goes back, and none leaves sent or failed
        assert status not in (CommandStatus.SENT, CommandStatus.FAILED)
        assert status is None or rank[new] >= rank[status]
        status = new


# --- delivery statuses ---------------------------------------------------------------------


@pytest.mark.parametrize("new", list(DeliveryStatus))
def test_the_first_receipt_is_recorded_whatever_it_says(new: DeliveryStatus) -> None:
    assert delivery_can_move(None, new)


@pytest.mark.parametrize("old", list(DeliveryStatus))
@pytest.mark.parametrize("new", list(DeliveryStatus))
def test_a_recorded_receipt_is_final_for_duplicates_and_late_contradicting_ones(
    old: DeliveryStatus, new: DeliveryStatus
) -> None:
    assert not delivery_can_move(old, new)


# --- retry policy ------------------------------------------------------------------------


class _Draw(random.Random):
    """A Random whose uniform draw is always the low or the high end of the range."""

    def __init__(self, *, high: bool) -> None:
        super().__init__(0)
        self._high = high

    def uniform(self, a: float, b: float) -> float:
        return b if self._high else a


LOW, HIGH = _Draw(high=False), _Draw(high=True)


def test_the_default_policy_waits_2_seconds_base_and_caps_at_15_minutes() -> None:
    policy = RetryPolicy(max_attempts=5)

    assert (policy.base_seconds, policy.cap_seconds) == (2.0, 900.0)


@pytest.mark.parametrize(
    ("attempts", "shortest", "longest"),
    [(1, 1, 2), (2, 2, 4), (3, 4, 8), (4, 8, 16), (9, 256, 512), (10, 450, 900), (50, 450, 900)],
)
def test_the_delay_doubles_per_attempt_with_equal_jitter_until_the_cap(
    attempts: int, shortest: int, longest: int
) -> None:
    # Given the default policy (base 2 s, cap 900 s)
    policy = RetryPolicy(max_attempts=100)

    # When the delay after `attempts` failures is drawn at the low and high ends
    # Then it lies between half and all of min(cap, base * 2**(attempts-1))
    assert policy.delay_seconds(attempts, rng=LOW) == shortest
    assert policy.delay_seconds(attempts, rng=HIGH) == longest


def test_a_fractional_delay_is_rounded_up_to_whole_seconds() -> None:
    policy = RetryPolicy(max_attempts=3, base_seconds=1.5)

    assert policy.delay_seconds(1, rng=LOW) == 1  # 0.75 s: at least one second
    assert policy.delay_seconds(2, rng=LOW) == 2  # 1.5 s
    assert policy.delay_seconds(2, rng=HIGH) == 3  # 3.0 s


def test_the_provider_s_retry_after_lengthens_a_shorter_delay() -> None:
    policy = RetryPolicy(max_attempts=3)

    assert policy.delay_seconds(1, rng=HIGH, retry_after=30.2) == 31


def test_a_retry_after_shorter_than_the_backoff_does_not_shorten_it() -> None:
    policy = RetryPolicy(max_attempts=20)

    assert policy.delay_seconds(10, rng=LOW, retry_after=5) == 450


def test_a_retry_after_beyond_the_sqs_maximum_is_cut_to_12_hours() -> None:
    policy = RetryPolicy(max_attempts=3)

    assert policy.delay_seconds(1, rng=LOW, retry_after=100_000) == SQS_MAX_DELAY
    assert policy.delay_seconds(1, rng=LOW, retry_after=math.inf) == SQS_MAX_DELAY


@pytest.mark.parametrize("retry_after", [math.nan, -5.0, 0.0])
def test_a_meaningless_retry_after_is_ignored(retry_after: float) -> None:
    policy = RetryPolicy(max_attempts=3)

    assert policy.delay_seconds(3, rng=HIGH, retry_after=retry_after) == 8


def test_a_cap_beyond_the_sqs_maximum_is_cut_to_12_hours() -> None:
    policy = RetryPolicy(max_attempts=30, base_seconds=60, cap_seconds=1_000_000)

    assert policy.delay_seconds(25, rng=HIGH) == SQS_MAX_DELAY


def test_a_huge_attempt_number_waits_the_cap_without_overflowing() -> None:
    policy = RetryPolicy(max_attempts=3)

    assert policy.delay_seconds(10**6, rng=HIGH) == 900


def test_a_delay_before_any_attempt_is_refused() -> None:
    with pytest.raises(ValueError, match="attempts must be at least 1"):
        RetryPolicy(max_attempts=3).delay_seconds(0, rng=HIGH)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_attempts": 0}, "max_attempts must be at least 1"),
        ({"max_attempts": -1}, "max_attempts must be at least 1"),
        ({"max_attempts": True}, "max_attempts must be an integer"),
        ({"max_attempts": 2.5}, "max_attempts must be an integer"),
        ({"max_attempts": 3, "base_seconds": 0}, "base_seconds must be a positive number"),
        ({"max_attempts": 3, "base_seconds": -1}, "base_seconds must be a positive number"),
        ({"max_attempts": 3, "base_seconds": math.nan}, "base_seconds must be a positive number"),
        ({"max_attempts": 3, "base_seconds": math.inf}, "base_seconds must be a positive number"),
        (
            {"max_attempts": 3, "base_seconds": 10, "cap_seconds": 5},
            "cap_seconds must be a number no smaller",
        ),
        ({"max_attempts": 3, "cap_seconds": math.inf}, "cap_seconds must be a number no smaller"),
        ({"max_attempts": 3, "cap_seconds": math.nan}, "cap_seconds must be a number no smaller"),
    ],
)
def test_a_policy_with_impossible_settings_is_refused_with_the_reason(
    kwargs: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("attempts", "exhausted"), [(0, False), (1, False), (2, False), (3, True), (4, True)]
)
def test_the_policy_is_exhausted_once_max_attempts_were_made(attempts: int, exhausted: bool) -> None:
    assert RetryPolicy(max_attempts=3).exhausted(attempts) is exhausted


def test_a_single_attempt_policy_is_exhausted_after_the_first_attempt() -> None:
    assert RetryPolicy(max_attempts=1).exhausted(1)


policies = st.builds(
    RetryPolicy,
    max_attempts=st.integers(1, 20),
    base_seconds=st.floats(0.001, 600),
    cap_seconds=st.floats(600, 100_000),
)
retry_afters = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True))


@settings(max_examples=300)
@given(
    policy=policies,
    attempts=st.integers(1, 10_000),
    seed=st.integers(0, 2**32),
    retry_after=retry_afters,
)
def test_every_delay_is_between_one_second_and_the_sqs_maximum(
    policy: RetryPolicy, attempts: int, seed: int, retry_after: float | None
) -> None:
    delay = policy.delay_seconds(attempts, rng=random.Random(seed), retry_after=retry_after)

    assert isinstance(delay, int)
    assert 1 <= delay <= SQS_MAX_DELAY


@given(
    policy=policies,
    attempts=st.integers(1, 60),
    seed=st.integers(0, 2**32),
    retry_after=st.floats(0, SQS_MAX_DELAY),
)
def test_a_delay_is_never_shorter_than_the_provider_s_retry_after(
    policy: RetryPolicy, attempts: int, seed: int, retry_after: float
) -> None:
    delay = policy.delay_seconds(attempts, rng=random.Random(seed), retry_after=retry_after)

    assert delay >= retry_after


@given(policy=policies, attempts=st.integers(1, 60), seed=st.integers(0, 2**32))
def test_a_delay_lies_within_the_equal_jitter_range_of_its_attempt(
    policy: RetryPolicy, attempts: int, seed: int
) -> None:
    full = min(policy.cap_seconds, policy.base_seconds * 2 ** (attempts - 1), SQS_MAX_DELAY)

    delay = policy.delay_seconds(attempts, rng=random.Random(seed))

    assert max(1, math.ceil(full / 2)) <= delay <= max(1, math.ceil(full))


@given(policy=policies, attempts=st.integers(1, 60))
def test_the_range_of_delays_never_shrinks_from_one_attempt_to_the_next(
    policy: RetryPolicy, attempts: int
) -> None:
    # Given the shortest and longest possible delays after n and n + 1 failed attempts
    now = (policy.delay_seconds(attempts, rng=LOW), policy.delay_seconds(attempts, rng=HIGH))
    then = (policy.delay_seconds(attempts + 1, rng=LOW), policy.delay_seconds(attempts + 1, rng=HIGH))

    # Then both ends are no earlier for the later attempt
    assert then[0] >= now[0]
    assert then[1] >= now[1]


@given(policy=policies, attempts=st.integers(1, 60), seed=st.integers(0, 2**32))
def test_with_the_same_random_draw_a_later_attempt_never_waits_less(
    policy: RetryPolicy, attempts: int, seed: int
) -> None:
    earlier = policy.delay_seconds(attempts, rng=random.Random(seed))
    later = policy.delay_seconds(attempts + 1, rng=random.Random(seed))

    assert later >= earlier


@given(policy=policies, seed=st.integers(0, 2**32), extra=st.integers(0, 100))
def test_once_the_cap_is_reached_further_attempts_wait_the_same(
    policy: RetryPolicy, seed: int, extra: int
) -> None:
    # Given the first attempt number whose exponential value reaches the cap
    capped = 1
    while policy.base_seconds * 2 ** (capped - 1) < policy.cap_seconds:
        capped += 1

    # When a later attempt draws the same random number
    # Then it waits exactly as long
    first = policy.delay_seconds(capped, rng=random.Random(seed))
    assert policy.delay_seconds(capped + extra, rng=random.Random(seed)) == first


# --- STOP / START / HELP keywords -----------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["STOP", "stop", "Stop", "stop.", "STOP!!", "stop-", "\n\tStOp\n", " Stop . ", "STOPALL", "unsubscribe",
     "End", "quit", "Cancel", "optout", "OPTOUT!", "revoke", "Revoke."],
)  # fmt: skip
def test_a_message_that_is_an_opt_out_keyword_opts_out(text: str) -> None:
    assert opt_keyword(text) == "out"


@pytest.mark.parametrize("text", ["START", "start", " Start ", "unstop.", "UNSTOP", "yes", "Yes!"])
def test_a_message_that_is_an_opt_in_keyword_opts_in(text: str) -> None:
    assert opt_keyword(text) == "in"


@pytest.mark.parametrize("text", ["HELP", "help", "Help?", " info ", "INFO."])
def test_a_message_that_is_help_or_info_asks_for_help(text: str) -> None:
    assert opt_keyword(text) == "help"


@pytest.mark.parametrize(
    "text",
    ["", "   ", "stopping", "OPT OUT", "opt-out", "please stop", "stop please", " Stop please",
     "Start again", "yes please", "help me", "start-up", "restart", ".stop", "\u017ftop", "s t o p", "hello",
     "STOP \U0001f6d1"],
)  # fmt: skip
def test_a_message_that_only_contains_a_keyword_is_no_keyword(text: str) -> None:
    assert opt_keyword(text) is None


def test_the_keyword_lists_are_the_contracts() -> None:
    assert {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"} == OPT_OUT_KEYWORDS
    assert {"START", "UNSTOP", "YES"} == OPT_IN_KEYWORDS
    assert {"HELP", "INFO"} == HELP_KEYWORDS


ALL_KEYWORDS = sorted(OPT_OUT_KEYWORDS | OPT_IN_KEYWORDS | HELP_KEYWORDS)


def _kind(keyword: str) -> str:
    return "out" if keyword in OPT_OUT_KEYWORDS else "in" if keyword in OPT_IN_KEYWORDS else "help"


@st.composite
def keyword_messages(draw: st.DrawFn) -> tuple[str, str]:
    keyword = draw(st.sampled_from(ALL_KEYWORDS))
    upper = draw(st.lists(st.booleans(), min_size=len(keyword), max_size=len(keyword)))
    cased = "".join(c.upper() if u else c.lower() for c, u in zip(keyword, upper, strict=True))
    before = draw(st.text(alphabet=" \t\r\n", max_size=3))
    after = draw(st.text(alphabet=" \t\r\n.,!?;:-)'\"", max_size=4))
    return keyword, before + cased + after


@given(message=keyword_messages())
def test_a_keyword_in_any_case_with_spacing_and_trailing_punctuation_is_recognised(
    message: tuple[str, str],
) -> None:
    keyword, text = message

    assert opt_keyword(text) == _kind(keyword)
    assert inbound_keyword(text) == keyword


@given(keyword=st.sampled_from(ALL_KEYWORDS), rest=st.text(min_size=1, max_size=20))
def test_a_keyword_followed_by_more_words_is_no_keyword(keyword: str, rest: str) -> None:
    # Given more than spacing and punctuation after the keyword ("stop please", "start 2")
    assume(any(not (c.isspace() or unicodedata.category(c).startswith("P")) for c in rest))

    assert opt_keyword(f"{keyword} {rest}") is None


@given(
    keyword=st.sampled_from(ALL_KEYWORDS),
    suffix=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=5),
)
def test_a_keyword_glued_to_more_letters_is_no_keyword(keyword: str, suffix: str) -> None:
    word = keyword + suffix
    assume(word.upper() not in ALL_KEYWORDS)  # e.g. "STOP" + "ALL"

    assert opt_keyword(word) is None


@given(text=st.text(max_size=50))
def test_any_text_gives_out_in_help_or_none_without_failing(text: str) -> None:
    assert opt_keyword(text) in ("out", "in", "help", None)


# --- signatures ------------------------------------------------------------------------------


def test_sign_is_lowercase_hex_hmac_sha256_as_in_rfc_4231() -> None:
    # RFC 4231, test case 2
    assert sign(b"what do ya want for nothing?", "Jefe") == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    )


def test_the_secret_is_used_as_its_utf8_bytes() -> None:
    body = b'{"id":"pm_1"}'

    assert sign(body, "clé") == hmac.new("clé".encode(), body, hashlib.sha256).hexdigest()


def test_an_uppercase_signature_matches() -> None:
    body = b'{"status":"delivered"}'

    assert signature_matches(body, "s3cret", sign(body, "s3cret").upper())


@pytest.mark.parametrize("signature", [None, "", "zz" * 32, "abc", "0" * 63, "0" * 65, "é" * 64, " " * 64])
def test_a_missing_short_long_or_non_hex_signature_does_not_match(signature: str | None) -> None:
    assert not signature_matches(b"body", "s3cret", signature)


def test_a_signature_with_extra_whitespace_does_not_match() -> None:
    body = b"body"

    assert not signature_matches(body, "s3cret", sign(body, "s3cret") + " ")


def test_a_signature_made_with_another_secret_does_not_match() -> None:
    body = b"body"

    assert not signature_matches(body, "s3cret", sign(body, "other"))


@given(body=st.binary(max_size=512), secret=st.text(max_size=40))
def test_a_body_signed_with_the_secret_matches_its_signature(body: bytes, secret: str) -> None:
    assert signature_matches(body, secret, sign(body, secret))


@given(
    body=st.binary(min_size=1, max_size=256),
    secret=st.text(min_size=1, max_size=40),
    position=st.integers(min_value=0),
    replacement=st.integers(0, 255),
)
def test_changing_any_single_byte_of_the_body_breaks_the_signature(
    body: bytes, secret: str, position: int, replacement: int
) -> None:
    # Given a signed body
    signature = sign(body, secret)
    index = position % len(body)
    assume(body[index] != replacement)

    # When one byte of it changes
    tampered = body[:index] + bytes([replacement]) + body[index + 1 :]

    # Then the signature no longer matches
    assert not signature_matches(tampered, secret, signature)


@given(
    body=st.binary(max_size=256),
    secret=st.text(min_size=1, max_size=40),
    position=st.integers(0, 63),
    replacement=st.characters(codec="utf-8"),
)
def test_changing_any_single_character_of_the_signature_breaks_it(
    body: bytes, secret: str, position: int, replacement: str
) -> None:
    # Given a valid signature
    signature = sign(body, secret)
    # (a change of case is not a change: hex is case-insensitive)
    assume(replacement.lower() != signature[position])

    # When one character of it changes
    tampered = signature[:position] + replacement + signature[position + 1 :]

    # Then it no longer matches
    assert not signature_matches(body, secret, tampered)
