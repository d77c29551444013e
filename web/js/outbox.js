// The outbox: messages written here that the API has not confirmed yet, kept in localStorage
// so that they survive a reload, a crash or a closed tab, and are sent again (with the same
// clientMessageId: the API answers the original for a replay, so nothing is stored twice).
//
// Why localStorage and not IndexedDB: a write is synchronous, so a message is on disk before
// its first request leaves (a reload right after Enter cannot lose it); the outbox is small
// (a few messages of at most 4096 characters; the browser gives each origin at least 5 MB);
// and it is read once per page load. IndexedDB would add an asynchronous window in which a
// reload loses the message, for capacity this client never needs.
//
// Entry: {chatId, clientMessageId, text, createdAt, state: "pending" | "failed", error?}
// The outbox also keeps a copy of each such chat (title, members) so that, after a reload
// without network, the chat still opens and shows what is waiting in it.
//
// Every call reads the storage again: two tabs of the same user share one outbox, and a
// message one tab confirmed is not sent again by the other (if both send it at once, the
// API's idempotency makes it one message).

const PREFIX = "chatflow.outbox.";

export class Outbox {
  /** @param {string} owner the signed-in user's phone number (one outbox per user) */
  constructor(owner) {
    this.key = PREFIX + owner;
    // When the browser refuses to store (storage disabled, quota full), the outbox lives in
    // this page only: messages are still sent and retried, but a reload loses what waits.
    this.memory = null;
  }

  read() {
    if (this.memory) return structuredClone(this.memory);
    try {
      const data = JSON.parse(localStorage.getItem(this.key) || "null");
      if (data && Array.isArray(data.entries) && data.chats && typeof data.chats === "object") return data;
    } catch {
      // A damaged value is replaced by the next write.
    }
    return { entries: [], chats: {} };
  }

  write(data) {
    const chatIds = new Set(data.entries.map((entry) => entry.chatId));
    for (const chatId of Object.keys(data.chats)) if (!chatIds.has(chatId)) delete data.chats[chatId];
    if (this.memory) {
      this.memory = data;
      return;
    }
    try {
      if (data.entries.length) localStorage.setItem(this.key, JSON.stringify(data));
      else localStorage.removeItem(this.key);
    } catch (error) {
      console.warn("The outbox cannot be stored in this browser; it lasts until the page closes.", error);
      this.memory = data;
    }
  }

  /** Entries in the order they were written. */
  entries() {
    return this.read().entries;
  }

  get(clientMessageId) {
    return this.read().entries.find((entry) => entry.clientMessageId === clientMessageId) || null;
  }

  has(clientMessageId) {
    return this.get(clientMessageId) !== null;
  }

  /** The copy of a chat kept with its waiting messages (null when none waits in it). */
  chat(chatId) {
    return this.read().chats[chatId] || null;
  }

  chats() {
    return Object.values(this.read().chats);
  }

  /** Keep a message before it is sent (or mark it pending again, for a retry). */
  put(entry, chat) {
    const data = this.read();
    const index = data.entries.findIndex((e) => e.clientMessageId === entry.clientMessageId);
    if (index >= 0) data.entries[index] = { ...data.entries[index], ...entry };
    else data.entries.push(entry);
    if (chat) data.chats[entry.chatId] = chat;
    this.write(data);
  }

  update(clientMessageId, fields) {
    const data = this.read();
    const entry = data.entries.find((e) => e.clientMessageId === clientMessageId);
    if (!entry) return null;
    Object.assign(entry, fields);
    this.write(data);
    return entry;
  }

  /** The API confirmed it (an answer, a frame, a page of history): it leaves the outbox. */
  remove(clientMessageId) {
    const data = this.read();
    const left = data.entries.filter((e) => e.clientMessageId !== clientMessageId);
    if (left.length === data.entries.length) return false;
    data.entries = left;
    this.write(data);
    return true;
  }

  clear() {
    this.memory = null;
    try {
      localStorage.removeItem(this.key);
    } catch {
      // Nothing was stored.
    }
  }
}
