"""Message search (contract §2 ``GET /v1/search``): words, query plans, matching, and the use case.

How text becomes words, the same way for messages and queries:

1. **fold**: case folded (``str.casefold``: "Straße" → "strasse"), compatibility
   decomposed (NFKD: the ligature "ﬁ" → "fi", full-width letters → ASCII) and combining
   marks dropped, so accents do not matter ("Café" → "cafe");
2. **split** into words: runs of word characters (``\\w``: letters, digits, ``_``, any
   script) and the spacing marks that are part of words in scripts such as Devanagari.

A query matches a message when *every* query word is the beginning of some word of the
message ("hel wor" matches "Hello, World!"). Word order and repeats do not matter.

The index (``SearchIndex``) holds, per chat, one entry per distinct word of each message:
at most ``MAX_INDEXED_WORDS`` words per message (the first ones), each cut to
``MAX_WORD_LENGTH`` characters. A search reads the entries that start with one query
word (the longest, the *driver*: the most selective), fetches those messages, and keeps
the ones whose text has every query word. docs/search.md explains the costs and limits.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from chatflow.domain.chats import Chat, Message
from chatflow.domain.clock import from_iso, to_iso
from chatflow.domain.pagination import CursorCodec, Position
from chatflow.errors import FieldProblem, InvalidCursor, NotFound, ValidationFailed

if TYPE_CHECKING:  # the ports module imports this module's entities
    from chatflow.ports import ChatRepository, SearchIndex

# A word longer than this is indexed by its first MAX_WORD_LENGTH characters (a query
# word longer than this still has to match in full: the text check sees whole words).
MAX_WORD_LENGTH = 64
# Words of one message that get an index entry: the first ones, in reading order. A
# 4096-character message has a few hundred distinct words at most; this bounds the writes
# (and the storage) of one message. Words past it are still checked, but are not found
# when they are the query's driver.
MAX_INDEXED_WORDS = 200
# Work one request may do: index entries read across the searched chats (past this the
# query is too broad to order newest first, and is refused), and messages fetched to check
# their text (past this the page is returned as it is, with a cursor to go on).
MAX_INDEX_ENTRIES = 20_000
MAX_CANDIDATES = 1_000
# Messages fetched per BatchGetItem (the service's limit is 100 keys).
_FETCH_MAX = 100


# ---- words ----------------------------------------------------------------------------


# Letters whose upper case folds to another letter: dotless i (U+0131) upper-cases to "I",
# which folds to "i". Turkish readers type either; both are searched as "i".
_SAME_LETTERS = str.maketrans({"\u0131": "i"})


def fold(text: str) -> str:
    """Text with case and accents folded away (the form both messages and queries are compared in)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold().translate(_SAME_LETTERS))
    # NFKD may reveal capitals (black-letter H becomes "H") and casefold may produce
    # decomposable letters: a second round settles both.
    decomposed = unicodedata.normalize("NFKD", _drop_combining(decomposed).casefold())
    return _drop_combining(decomposed)


def _drop_combining(text: str) -> str:
    return "".join(c for c in text if not unicodedata.combining(c))


def _is_word_char(char: str) -> bool:
    # \w, plus marks that remain after folding (spacing vowel signs of Indic scripts, Thai
    # vowels): they belong to the word around them.
    return char.isalnum() or char == "_" or unicodedata.category(char)[0] == "M"


def words(text: str) -> list[str]:
    """The folded words of ``text``, in reading order, repeats included."""
    found: list[str] = []
    current: list[str] = []
    for char in fold(text):
        if _is_word_char(char):
            current.append(char)
        elif current:
            found.append("".join(current))
            current = []
    if current:
        found.append("".join(current))
    return found


def index_words(text: str) -> tuple[str, ...]:
    """The words a message is indexed under: distinct, cut to ``MAX_WORD_LENGTH``, the first
    ``MAX_INDEXED_WORDS`` of them."""
    distinct = dict.fromkeys(word[:MAX_WORD_LENGTH] for word in words(text))
    return tuple(distinct)[:MAX_INDEXED_WORDS]


# ---- queries --------------------------------------------------------------------------


@dataclass(frozen=True)
class SearchQuery:
    """What to look for: ``words`` must each begin a word of a match; ``driver`` is the
    prefix of index entries that lists the candidates."""

    words: tuple[str, ...]
    driver: str


def parse_query(text: str) -> SearchQuery:
    """Plan a query: its distinct words (one that begins another is implied by it and
    dropped), and the longest as the driver. No words at all is a 400."""
    distinct = set(words(text))
    if not distinct:
        raise ValidationFailed(
            "The search has no words: q needs at least one letter or digit, e.g. q=hello.",
            details=(FieldProblem("q", "must contain at least one word"),),
        )
    kept = sorted(w for w in distinct if not any(o != w and o.startswith(w) for o in distinct))
    longest = max(kept, key=lambda w: (len(w), w))
    return SearchQuery(words=tuple(kept), driver=longest[:MAX_WORD_LENGTH])


def matches(text: str, query: SearchQuery) -> bool:
    """Every query word begins some word of ``text``."""
    present = set(words(text))
    return all(any(word.startswith(wanted) for word in present) for wanted in query.words)


# ---- index entries and positions ------------------------------------------------------


@dataclass(frozen=True, order=True)
class MessageRef:
    """Where a message is in search results: ordered by time, then chat, then seq."""

    sent_at: datetime
    chat_id: str
    seq: int

    @classmethod
    def of(cls, message: Message) -> MessageRef:
        return cls(message.sent_at, message.chat_id, message.seq)


@dataclass(frozen=True)
class IndexHits:
    """Messages whose index entries start with a prefix (a message may be listed more than
    once, under several words); ``complete`` is False when reading stopped at the budget."""

    refs: tuple[MessageRef, ...]
    complete: bool


def _position(ref: MessageRef) -> Position:
    return {"at": to_iso(ref.sent_at), "chat": ref.chat_id, "seq": ref.seq}


def _ref(position: Position) -> MessageRef:
    at, chat_id, seq = position.get("at"), position.get("chat"), position.get("seq")
    if not isinstance(at, str) or not isinstance(chat_id, str) or type(seq) is not int:
        raise InvalidCursor("The cursor is not valid for this search: omit it to start again.")
    try:
        return MessageRef(from_iso(at), chat_id, seq)
    except ValueError as exc:
        raise InvalidCursor("The cursor is not valid for this search: omit it to start again.") from exc


# ---- the use case ---------------------------------------------------------------------


@dataclass(frozen=True)
class SearchResults:
    """A page of matches, newest first, with the chats they are in (for their statuses)."""

    messages: list[Message]
    chats: dict[str, Chat]
    next_cursor: str | None


class SearchService:
    def __init__(
        self,
        *,
        chats: ChatRepository,
        index: SearchIndex,
        cursors: CursorCodec,
        max_index_entries: int = MAX_INDEX_ENTRIES,
        max_candidates: int = MAX_CANDIDATES,
    ) -> None:
        self._chats = chats
        self._index = index
        self._cursors = cursors
        self._max_index_entries = max_index_entries
        self._max_candidates = max_candidates

    def search(
        self, caller: str, text: str, *, chat_id: str | None, limit: int, cursor: str | None
    ) -> SearchResults:
        """Messages of the caller's chats (or of ``chat_id``) that match ``text``, newest first.

        The cursor holds the position of the last message looked at; the next page
        continues strictly after it, so pages neither overlap nor skip.
        """
        query = parse_query(text)
        scope = f"search|{caller}|{chat_id or ''}|{' '.join(query.words)}"
        position = self._cursors.decode(scope, cursor)
        after = _ref(position) if position is not None else None
        known: dict[str, Chat] = {}
        if chat_id is not None:
            chat = self._chats.get_chat(chat_id)
            if chat is None or not chat.is_member(caller):
                raise NotFound(f"Chat {chat_id!r} does not exist or you are not a member of it.")
            known[chat_id] = chat
            chat_ids = [chat_id]
        else:
            chat_ids = self._chats.inbox_chat_ids(caller)
        hits = self._index.find(chat_ids, query.driver, max_entries=self._max_index_entries)
        if not hits.complete:
            narrower = "type more of the word" + ("" if chat_id else ", or search one chat with chatId")
            raise ValidationFailed(
                f"Too many messages have a word starting with {query.driver!r}: {narrower}.",
                details=(FieldProblem("q", "is too broad"),),
            )
        candidates = sorted({r for r in hits.refs if after is None or r < after}, reverse=True)
        found, last_checked, exhausted = self._check(candidates, query, want=limit + 1)
        if len(found) > limit:
            found = found[:limit]
            next_position: Position | None = _position(found[-1][0])
        elif not exhausted and last_checked is not None:
            # The budget of messages to check ran out: a short page, and a cursor to go on.
            next_position = _position(last_checked)
        else:
            next_position = None
        missing = [cid for cid in dict.fromkeys(ref.chat_id for ref, _ in found) if cid not in known]
        if missing:
            known |= self._chats.get_chats(missing)
        # The inbox can briefly outlive a membership: never show such a chat's messages.
        messages = [m for _, m in found if m.chat_id in known and known[m.chat_id].is_member(caller)]
        return SearchResults(messages, known, self._cursors.encode(scope, next_position))

    def _check(
        self, candidates: Sequence[MessageRef], query: SearchQuery, *, want: int
    ) -> tuple[list[tuple[MessageRef, Message]], MessageRef | None, bool]:
        """Fetch candidates newest first and keep the matches, until ``want`` of them, the
        end, or the budget. Returns the matches, the last candidate looked at, and whether
        every candidate was looked at."""
        found: list[tuple[MessageRef, Message]] = []
        last: MessageRef | None = None
        taken = 0
        # The first fetch is what a page needs if every candidate matches (the usual case:
        # one-word queries always do); later ones grow, up to the service's batch limit.
        size = want
        while taken < len(candidates) and len(found) < want and taken < self._max_candidates:
            chunk = candidates[taken : taken + min(size, _FETCH_MAX, self._max_candidates - taken)]
            fetched = {
                (m.chat_id, m.seq): m for m in self._chats.get_messages([(r.chat_id, r.seq) for r in chunk])
            }
            for ref in chunk:
                taken += 1
                last = ref
                message = fetched.get((ref.chat_id, ref.seq))
                if message is not None and matches(message.text, query):
                    found.append((ref, message))
                    if len(found) == want:
                        break
            size *= 2
        return found, last, taken >= len(candidates)
