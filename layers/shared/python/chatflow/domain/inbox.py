"""Which inbox entries a change of a chat moves: the projection behind "chats by activity"."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from chatflow.domain.chats import Chat


@dataclass(frozen=True)
class InboxChange:
    chat_id: str
    activity: datetime
    upsert: tuple[str, ...]
    remove: tuple[str, ...]


def inbox_change(old: Chat | None, new: Chat | None) -> InboxChange | None:
    """Compare two versions of a chat; ``None`` when no member's inbox must change.

    New activity moves every member's entry; a membership change adds or drops the
    entries of the members concerned; a change of read/delivered markers moves nothing.
    """
    if new is None:
        return None
    before = {m.phone_number for m in old.members} if old else set()
    after = [m.phone_number for m in new.members]
    removed = tuple(sorted(before - set(after)))
    if old is None or new.last_activity_at != old.last_activity_at:
        upsert = tuple(after)
    else:
        upsert = tuple(p for p in after if p not in before)
    if not upsert and not removed:
        return None
    return InboxChange(new.chat_id, new.last_activity_at, upsert, removed)
