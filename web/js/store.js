// What the client knows: chats, the loaded part of each chat's history, presence, typing.
// The views listen to its events and redraw what changed:
//   "chats"     the chat list changed (order, last message, unread count, a new chat)
//   "messages"  detail {chatId}: that chat's messages changed (new, confirmed, status)
//   "presence"  detail {phoneNumber}
//   "typing"    detail {chatId}

// sending: on its way; waiting: for the network (kept in the outbox); failed: for good (Retry)
const STATUS_RANK = { sending: 0, waiting: 0, failed: 0, sent: 1, delivered: 2, read: 3 };
const TYPING_MS = 5000;
const TYPING_AFTER_MESSAGE_MS = 1500;

export function chatTitle(chat, me) {
  if (!chat) return "";
  if (chat.type === "group") return chat.name || "Group";
  const other = chat.members.find((m) => m.phoneNumber !== me) || chat.members[0];
  return other ? other.displayName || other.phoneNumber : "Chat";
}

/** The other member of a direct chat (null for groups). */
export function directPeer(chat, me) {
  if (!chat || chat.type !== "direct") return null;
  return chat.members.find((m) => m.phoneNumber !== me)?.phoneNumber || null;
}

export function memberName(chat, phoneNumber) {
  const member = chat?.members.find((m) => m.phoneNumber === phoneNumber);
  return member?.displayName || phoneNumber;
}

class Conversation {
  constructor() {
    this.byKey = new Map(); // "m:<messageId>" for stored messages, "c:<clientMessageId>" for pending ones
    this.olderCursor = null;
    this.hasOlder = true;
    this.loaded = false; // the newest page was loaded
    this.maxSeq = 0; // highest seq held with no gap below it down to the oldest loaded page
    this.readSent = 0; // the read marker this client already sent
    this.deliveredSent = 0; // the delivered marker this client already sent
    this.deliveredWanted = 0; // the highest seq that reached this device (sent after a short batch)
    this.statusUpTo = { delivered: 0, read: 0 }; // from message.status frames
    this.markers = new Map(); // phoneNumber -> {delivered, read}, for groups
  }

  /** Stored messages by seq, then pending ones in the order they were written. */
  list() {
    const stored = [];
    const pending = [];
    for (const message of this.byKey.values()) (message.seq ? stored : pending).push(message);
    stored.sort((a, b) => a.seq - b.seq);
    pending.sort((a, b) => a.createdLocally - b.createdLocally);
    return stored.concat(pending);
  }
}

export class ChatStore extends EventTarget {
  constructor(me) {
    super();
    this.me = me; // the signed-in user's phone number
    this.chats = new Map();
    this.chatsCursor = null;
    this.chatsLoaded = false;
    this.conversations = new Map();
    this.presence = new Map();
    this.presenceFrames = 0; // presence frames received so far
    this.presenceFrameAt = new Map(); // phoneNumber -> presenceFrames when its last frame came
    this.typing = new Map(); // chatId -> Map(phoneNumber -> timer)
    this.lastMessageFrom = new Map(); // "<chatId>|<phoneNumber>" -> time of their last message here
    this.pendingCount = 0; // orders pending messages as they were written (or restored from the outbox)
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  // ---- chats ----------------------------------------------------------------------------

  /** Chats, most recent activity first. */
  sortedChats() {
    return [...this.chats.values()].sort((a, b) => (b.lastActivityAt || "").localeCompare(a.lastActivityAt || ""));
  }

  setChatPage(page, { append }) {
    if (!append) this.chats.clear();
    for (const chat of page.items) this.mergeChat(chat);
    this.chatsCursor = page.nextCursor;
    this.chatsLoaded = true;
    this.emit("chats");
  }

  /** The first page fetched again: merged, keeping the chats of later pages and the cursor to them. */
  mergeChatPage(page) {
    for (const chat of page.items) this.mergeChat(chat);
    if (!this.chatsLoaded) this.chatsCursor = page.nextCursor;
    this.chatsLoaded = true;
    this.emit("chats");
  }

  upsertChat(chat) {
    this.mergeChat(chat);
    this.emit("chats");
    return this.chats.get(chat.chatId);
  }

  mergeChat(chat) {
    const known = this.chats.get(chat.chatId);
    // A page fetched before a message frame arrived must not move the list backwards.
    if (known?.lastMessage && chat.lastMessage && known.lastMessage.seq > chat.lastMessage.seq) {
      chat = { ...chat, lastMessage: known.lastMessage, lastActivityAt: known.lastActivityAt };
    }
    this.chats.set(chat.chatId, chat);
  }

  // ---- messages -------------------------------------------------------------------------

  conversation(chatId) {
    let conversation = this.conversations.get(chatId);
    if (!conversation) {
      conversation = new Conversation();
      this.conversations.set(chatId, conversation);
    }
    return conversation;
  }

  /** Chats whose history is loaded (they need a catch-up after a reconnect). */
  loadedChatIds() {
    return [...this.conversations.entries()].filter(([, c]) => c.loaded).map(([id]) => id);
  }

  /** A page of history, newest first, older than what is held. */
  addOlderPage(chatId, page) {
    const conversation = this.conversation(chatId);
    this.putStored(conversation, page.items);
    conversation.olderCursor = page.nextCursor;
    conversation.hasOlder = Boolean(page.nextCursor);
    if (!conversation.loaded) {
      conversation.loaded = true;
      conversation.maxSeq = Math.max(0, ...page.items.map((m) => m.seq));
    }
    this.emit("messages", { chatId });
  }

  /**
   * Messages that arrived (a frame, a POST answer, a catch-up page). Returns those that were
   * not held yet. `maxSeq` only moves over a contiguous run, so a catch-up never skips a gap.
   */
  addMessages(chatId, messages) {
    const conversation = this.conversation(chatId);
    const { fresh, changed } = this.putStored(conversation, messages);
    if (conversation.loaded) {
      const seqs = new Set([...conversation.byKey.values()].map((m) => m.seq).filter(Boolean));
      while (seqs.has(conversation.maxSeq + 1)) conversation.maxSeq += 1;
    }
    const newest = messages.reduce((a, m) => (!a || m.seq > a.seq ? m : a), null);
    const chat = this.chats.get(chatId);
    if (chat && newest && (!chat.lastMessage || newest.seq > chat.lastMessage.seq)) {
      const unread = fresh.filter((m) => m.sender !== this.me && m.seq > conversation.readSent).length;
      this.chats.set(chatId, {
        ...chat,
        lastMessage: newest,
        lastActivityAt: newest.sentAt,
        unreadCount: (chat.unreadCount || 0) + unread,
      });
      this.emit("chats");
    }
    if (changed) this.emit("messages", { chatId });
    return fresh;
  }

  /** Store messages; {fresh: those not held before (nor pending here), changed: anything moved}. */
  putStored(conversation, messages) {
    const fresh = [];
    let changed = false;
    for (const message of messages) {
      const key = `m:${message.messageId}`;
      const pendingKey = `c:${message.clientMessageId}`;
      const pending = message.sender === this.me ? conversation.byKey.get(pendingKey) : null;
      if (pending) {
        conversation.byKey.delete(pendingKey);
        changed = true;
      }
      const known = conversation.byKey.get(key);
      if (known) {
        // Keep the better status of the two (a frame may have moved it already).
        if (STATUS_RANK[message.status] > STATUS_RANK[known.status]) {
          known.status = message.status;
          changed = true;
        }
        continue;
      }
      conversation.byKey.set(key, { ...message });
      changed = true;
      if (!pending) fresh.push(message);
    }
    return { fresh, changed };
  }

  /**
   * A message written here, shown at once (optimistic) until the API confirms it; also one
   * restored from the outbox after a reload (with its status and time).
   */
  addPending(chatId, text, clientMessageId, { status = "sending", sentAt = new Date().toISOString() } = {}) {
    const conversation = this.conversation(chatId);
    if (conversation.byKey.has(`c:${clientMessageId}`)) return this.setPendingStatus(chatId, clientMessageId, status);
    this.pendingCount += 1;
    const message = {
      messageId: null,
      chatId,
      seq: null,
      sender: this.me,
      text,
      clientMessageId,
      sentAt,
      status,
      createdLocally: this.pendingCount,
    };
    conversation.byKey.set(`c:${clientMessageId}`, message);
    this.emit("messages", { chatId });
    return message;
  }

  setPendingStatus(chatId, clientMessageId, status) {
    const message = this.conversation(chatId).byKey.get(`c:${clientMessageId}`);
    if (!message) return null;
    if (message.status === status) return message;
    message.status = status;
    this.emit("messages", { chatId });
    return message;
  }

  /** The status to show for one of the caller's messages. */
  statusOf(chatId, message) {
    if (!message.seq) return message.status;
    const { statusUpTo } = this.conversation(chatId);
    let status = message.status;
    if (message.seq <= statusUpTo.delivered && STATUS_RANK[status] < STATUS_RANK.delivered) status = "delivered";
    if (message.seq <= statusUpTo.read) status = "read";
    return status;
  }

  /** A message.status frame: another member's marker moved. */
  applyStatus({ chatId, upToSeq, status, by }) {
    const conversation = this.conversation(chatId);
    const chat = this.chats.get(chatId);
    const others = chat ? chat.members.map((m) => m.phoneNumber).filter((p) => p !== this.me) : [by];
    const marker = conversation.markers.get(by) || { delivered: 0, read: 0 };
    marker.delivered = Math.max(marker.delivered, upToSeq);
    if (status === "read") marker.read = Math.max(marker.read, upToSeq);
    conversation.markers.set(by, marker);
    // A message is delivered (read) once every other member's marker reached it.
    if (others.every((p) => conversation.markers.has(p))) {
      const markers = others.map((p) => conversation.markers.get(p));
      conversation.statusUpTo.delivered = Math.max(conversation.statusUpTo.delivered, Math.min(...markers.map((m) => m.delivered)));
      conversation.statusUpTo.read = Math.max(conversation.statusUpTo.read, Math.min(...markers.map((m) => m.read)));
    }
    this.emit("messages", { chatId });
  }

  markReadLocally(chatId) {
    const chat = this.chats.get(chatId);
    if (chat && chat.unreadCount) {
      this.chats.set(chatId, { ...chat, unreadCount: 0 });
      this.emit("chats");
    }
  }

  // ---- presence and typing ---------------------------------------------------------------

  setPresence({ phoneNumber, online, lastSeenAt }) {
    this.presenceFrames += 1;
    this.presenceFrameAt.set(phoneNumber, this.presenceFrames);
    this.presence.set(phoneNumber, { online: Boolean(online), lastSeenAt: lastSeenAt || null });
    this.emit("presence", { phoneNumber });
  }

  /** A state read over HTTP when ``asked`` frames had come: a frame since then is newer. */
  setPresenceSnapshot({ phoneNumber, online, lastSeenAt }, asked) {
    if ((this.presenceFrameAt.get(phoneNumber) ?? 0) > asked) return;
    this.presence.set(phoneNumber, { online: Boolean(online), lastSeenAt: lastSeenAt || null });
    this.emit("presence", { phoneNumber });
  }

  setTyping(chatId, phoneNumber) {
    if (phoneNumber === this.me) return;
    // A typing frame can arrive just after the message it was typed for: not typing any more.
    if (Date.now() - (this.lastMessageFrom.get(`${chatId}|${phoneNumber}`) || 0) < TYPING_AFTER_MESSAGE_MS) return;
    let typers = this.typing.get(chatId);
    if (!typers) {
      typers = new Map();
      this.typing.set(chatId, typers);
    }
    clearTimeout(typers.get(phoneNumber));
    typers.set(
      phoneNumber,
      setTimeout(() => this.clearTyping(chatId, phoneNumber), TYPING_MS),
    );
    this.emit("typing", { chatId });
  }

  /** A message from `phoneNumber` arrived: it stopped typing. */
  messageFrom(chatId, phoneNumber) {
    this.lastMessageFrom.set(`${chatId}|${phoneNumber}`, Date.now());
    this.clearTyping(chatId, phoneNumber);
  }

  clearTyping(chatId, phoneNumber) {
    const typers = this.typing.get(chatId);
    if (!typers?.has(phoneNumber)) return;
    clearTimeout(typers.get(phoneNumber));
    typers.delete(phoneNumber);
    this.emit("typing", { chatId });
  }

  typersOf(chatId) {
    return [...(this.typing.get(chatId)?.keys() || [])];
  }

  /** Forget every timer (sign-out). */
  dispose() {
    for (const typers of this.typing.values()) for (const timer of typers.values()) clearTimeout(timer);
    this.typing.clear();
  }
}
