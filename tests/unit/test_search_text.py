"""How search sees text: words, folding, query plans and matching (chatflow.domain.search)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatflow.domain.search import (
    MAX_INDEXED_WORDS,
    MAX_WORD_LENGTH,
    fold,
    index_words,
    matches,
    parse_query,
    words,
)
from chatflow.errors import ValidationFailed

# ---- words ------------------------------------------------------------------------------


def test_words_are_split_on_anything_but_letters_and_digits() -> None:
    # Given text with punctuation, digits and an apostrophe
    # When it is split into words
    # Then punctuation and spaces separate words and digits belong to them
    assert words("Hello, World! it's 5pm...ok") == ["hello", "world", "it", "s", "5pm", "ok"]


def test_words_ignore_case_and_accents() -> None:
    # Given accented and capitalised words
    # When they are split into words
    # Then case and accents are gone
    assert words("Café CRÈME Brûlée Ångström") == ["cafe", "creme", "brulee", "angstrom"]


def test_sharp_s_and_ligatures_fold_to_their_letters() -> None:
    # Given a German sharp s and an "fi" ligature
    # When they are split into words
    # Then they are compared as their plain letters
    assert words("Straße ﬁle") == ["strasse", "file"]


def test_dotted_and_dotless_i_are_one_letter() -> None:
    # Given Turkish dotless and dotted capital I, whose case forms cross over
    # When they are split into words
    # Then both are the plain i, so "I" finds dotless i and "i" finds dotted capital I
    assert words("\u0131 \u0130 I i") == ["i", "i", "i", "i"]


def test_words_of_other_scripts_are_kept_whole() -> None:
    # Given Cyrillic, Greek and Devanagari words (Devanagari vowel signs are marks)
    found = words("Привет ΚΑΛΗΜΈΡΑ नमस्ते")
    # When split
    # Then each is one lower-case word, vowel signs kept inside the Devanagari one
    assert found[:2] == ["привет", "καλημερα"]
    assert len(found) == 3
    assert "\u0947" in found[2]  # the vowel sign E


@given(st.text())
def test_folding_twice_is_folding_once(text: str) -> None:
    # Given any text, When it is folded again, Then nothing changes
    assert fold(fold(text)) == fold(text)


@given(st.text(max_size=300))
def test_words_are_never_empty_and_contain_no_separators(text: str) -> None:
    # Given any text, When it is split, Then every word is non-empty and has no space or #
    for word in words(text):
        assert word
        assert not any(c.isspace() or c == "#" for c in word)


# ---- what gets indexed ------------------------------------------------------------------


def test_index_words_are_distinct_and_in_reading_order() -> None:
    # Given a message repeating words in different cases
    # When its index words are taken
    # Then each word appears once, in the order first read
    assert index_words("See you, see YOU soon. Soon!") == ("see", "you", "soon")


def test_long_words_are_indexed_by_their_beginning() -> None:
    # Given a word far longer than the limit
    long_word = "a" * (MAX_WORD_LENGTH + 40)
    # When the message is indexed
    # Then the word is cut to the limit
    assert index_words(f"{long_word} b") == ("a" * MAX_WORD_LENGTH, "b")


def test_only_the_first_words_of_a_huge_message_are_indexed() -> None:
    # Given a message with more distinct words than the limit
    text = " ".join(f"w{n}" for n in range(MAX_INDEXED_WORDS + 50))
    # When it is indexed
    indexed = index_words(text)
    # Then the first MAX_INDEXED_WORDS words are
    assert len(indexed) == MAX_INDEXED_WORDS
    assert indexed[0] == "w0"
    assert indexed[-1] == f"w{MAX_INDEXED_WORDS - 1}"


# ---- queries ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "   ", "!!! ...", "\u0301"])
def test_a_query_without_words_is_refused(text: str) -> None:
    # Given a query with nothing to search for
    # When it is parsed
    # Then it is a validation error about q
    with pytest.raises(ValidationFailed) as caught:
        parse_query(text)
    assert [d.field for d in caught.value.details] == ["q"]
    assert "word" in caught.value.message


def test_the_longest_word_drives_and_implied_words_are_dropped() -> None:
    # Given a query where "hel" is implied by "hello"
    # When it is parsed
    query = parse_query("hel Hello wor")
    # Then the words are the distinct, non-implied ones and the longest drives
    assert query.words == ("hello", "wor")
    assert query.driver == "hello"


def test_a_very_long_query_word_drives_by_its_beginning_but_must_match_whole() -> None:
    # Given a query word longer than the indexed length
    long_word = "x" * (MAX_WORD_LENGTH + 10)
    query = parse_query(long_word)
    # Then the driver is its indexed length, and a message must still have the whole word
    assert query.driver == "x" * MAX_WORD_LENGTH
    assert matches(long_word + "y", query)
    assert not matches("x" * (MAX_WORD_LENGTH + 5), query)


# ---- matching -----------------------------------------------------------------------------


def test_word_prefixes_match_in_any_case() -> None:
    # Given the contract's example
    # When "hel wor" is matched against "Hello, World!"
    # Then it matches
    assert matches("Hello, World!", parse_query("hel wor"))


def test_every_query_word_must_match() -> None:
    # Given a message with "hello" but no word starting with "xyz"
    # When "hel xyz" is matched
    # Then it does not match
    assert not matches("Hello, World!", parse_query("hel xyz"))


def test_a_query_word_must_begin_a_word_not_sit_inside_it() -> None:
    # Given "Hello"
    # When "ello" is matched
    # Then it does not match
    assert not matches("Hello", parse_query("ello"))


def test_accents_do_not_matter_either_way() -> None:
    # Given a message with and one without accents
    # When each is matched by the other spelling
    # Then both match
    assert matches("un café noir", parse_query("CAFE"))
    assert matches("un cafe noir", parse_query("café"))


def test_word_order_does_not_matter() -> None:
    # Given a message, When its words are searched in reverse order, Then it matches
    assert matches("meeting at noon tomorrow", parse_query("tomorrow meet"))


# ---- the property: any prefix of any word, in any case, finds the message ------------------

WORD = st.text(
    alphabet=st.characters(categories=("Lu", "Ll", "Lt", "Lo", "Nd")),
    min_size=1,
    max_size=20,
)
CASES: list[Callable[[str], str]] = [str, str.upper, str.lower, str.title, str.swapcase]
CASE = st.sampled_from(CASES)


@settings(max_examples=300)
@given(
    message=st.lists(WORD, min_size=1, max_size=12),
    separators=st.lists(st.sampled_from([" ", ", ", "! ", "\n", " - ", "..."]), min_size=12, max_size=12),
    data=st.data(),
)
def test_any_prefix_of_any_word_in_any_case_finds_the_message(
    message: list[str], separators: list[str], data: st.DataObject
) -> None:
    # Given a message made of words and separators
    text = "".join(w + s for w, s in zip(message, separators, strict=False))
    # And a query that is a prefix of one of its words, in some case
    word = data.draw(st.sampled_from(message), label="word")
    prefix = word[: data.draw(st.integers(1, len(word)), label="length")]
    raw_query = data.draw(CASE, label="case")(prefix)
    query = parse_query(raw_query)

    # When the message is matched, and its index entries are looked up by the driver
    found = matches(text, query)
    indexed = any(w.startswith(query.driver) for w in index_words(text))

    # Then the message matches and is listed under the driver
    assert found
    assert indexed
