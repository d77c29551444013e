// What the chat screens do, between the views, the HTTP API, the WebSocket and the store:
// loading chats and history, sending (optimistic, through the outbox, idempotent by
// clientMessageId), receipts (delivered, coalesced per chat; read), typing, the frames of the
// WebSocket, and catching up after a reconnect with GET .../messages?afterSeq= (no gap, no
// duplicate: the store dedupes by messageId).

import { ApiError, describeError } from "./api.js";
import { newId } from "./dom.js";
import { chatTitle, memberName } from "./store.js";

const TYPING_EVERY_MS = 3000;
// Answers that say the server failed (5xx, 408) before a message is marked "Failed". A network
// failure never counts: the message waits for the network (the outbox keeps it meanwhile),
// and 429 waits for its Retry-After.
const SERVER_ATTEMPTS = 3;
const FIRST_WAIT_MS = 1000;
const MAX_WAIT_MS = 30 * 1000;
// Delivered receipts of one chat that fall in this window go out as one (the highest seq).
const RECEIPT_BATCH_MS = 250;
const HISTORY_PAGE = 30;
const CATCH_UP_PAGE = 100;

/** What to do after a failed send: "network" (wait for it), "rate" (wait Retry-After), "server" (retry a few times), "final". */
function failureKind(error) {
  if (!(error instanceof ApiError)) return "final";
  if (error.status === 0) return "network";
  if (error.status === 429) return "rate";
  if (error.status === 408 || error.status >= 500) return "server";
  return "final";
}

/** Exponential backoff with jitter: 1 s, 2 s, 4 s ... up to 30 s. */
function backoff(attempt) {
  const ceiling = Math.min(MAX_WAIT_MS, FIRST_WAIT_MS * 2 ** attempt);
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

export class Messaging {
  /**
   * @param {object} deps {api, store, socket, outbox, announce(text), report(error)}
   */
  constructor({ api, store, socket, outbox, announce, report }) {
    this.api = api;
    this.store = store;
    this.socket = socket;
    this.outbox = outbox;
    this.announce = announce;
    this.report = report;
    this.visibleChatId = null; // the chat on screen (null: the list, another page, a hidden tab)
    this.loadingOlder = new Set();
    this.catchingUp = new Map(); // chatId -> promise
    this.lastTypingSent = new Map();
    this.sending = new Map(); // chatId -> the promise of its last send (sends go in order)
    this.wakers = new Set(); // sends waiting for the network: called when it may be back
    this.offline = new Set(); // chats whose current send waits for the network
    this.receiptTimers = new Map(); // chatId -> timer of its coalesced delivered receipt
    this.stopped = false;
    this.lastTokenCheck = 0;

    socket.addEventListener("frame", (event) => this.onFrame(event.detail));
    socket.addEventListener("open", () => this.onOpen());
    socket.addEventListener("failed", () => this.checkToken());
  }

  // ---- chats ------------------------------------------------------------------------------

  async loadChats() {
    const page = await this.api.listChats(null);
    this.store.setChatPage(page, { append: false });
    // A chat with messages waiting in the outbox stays, even when it is not on the first page.
    for (const chat of this.outbox.chats()) if (!this.store.chats.has(chat.chatId)) this.store.upsertChat(chat);
    this.markListDelivered(page.items);
    this.loadPresence(page.items.filter((chat) => chat.type === "direct"));
  }

  /** Who is online now in these chats: presence frames only tell changes from here on. */
  async loadPresence(chats) {
    await Promise.all(
      chats.map(async (chat) => {
        try {
          const asked = this.store.presenceFrames;
          const { items } = await this.api.chatPresence(chat.chatId);
          for (const state of items) {
            if (state.phoneNumber !== this.store.me) this.store.setPresenceSnapshot(state, asked);
          }
        } catch {
          // Presence is a nicety: the list works without it, and frames fill it in later.
        }
      }),
    );
  }

  async loadMoreChats() {
    if (!this.store.chatsCursor) return;
    try {
      const page = await this.api.listChats(this.store.chatsCursor);
      this.store.setChatPage(page, { append: true });
      this.markListDelivered(page.items);
    } catch (error) {
      this.report(error);
    }
  }

  /** The first page again, merged (after a reconnect: unread counts and order may have moved). */
  async refreshChats() {
    try {
      const page = await this.api.listChats(null);
      this.store.mergeChatPage(page);
      this.markListDelivered(page.items);
      this.loadPresence(page.items.filter((chat) => chat.type === "direct"));
    } catch (error) {
      this.report(error);
    }
  }

  /** Messages waiting in the list reached this device: say so (their senders see ✓✓). */
  markListDelivered(chats) {
    for (const chat of chats) {
      const last = chat.lastMessage;
      if (chat.unreadCount > 0 && last && last.sender !== this.store.me) this.delivered(chat.chatId, last.seq);
    }
  }

  async ensureChat(chatId) {
    if (this.store.chats.has(chatId)) return this.store.chats.get(chatId);
    return this.store.upsertChat(await this.api.getChat(chatId));
  }

  // ---- history ----------------------------------------------------------------------------

  /** The newest page the first time, then older pages (scrolling up). */
  async loadOlder(chatId) {
    const conversation = this.store.conversation(chatId);
    if (this.loadingOlder.has(chatId) || (conversation.loaded && !conversation.hasOlder)) return;
    this.loadingOlder.add(chatId);
    try {
      const page = await this.api.listMessages(chatId, { cursor: conversation.olderCursor, limit: HISTORY_PAGE });
      this.settle(page.items);
      this.store.addOlderPage(chatId, page);
    } catch (error) {
      this.report(error);
      throw error;
    } finally {
      this.loadingOlder.delete(chatId);
    }
  }

  /** Everything after the last seq held, oldest first, page after page. */
  catchUp(chatId) {
    const running = this.catchingUp.get(chatId);
    if (running) return running.then(() => this.catchUp(chatId)); // once more: something new may be past it
    const run = (async () => {
      const conversation = this.store.conversation(chatId);
      if (!conversation.loaded) return;
      let newest = 0; // the newest message from someone else that this catch-up brought
      for (;;) {
        const from = conversation.maxSeq;
        const page = await this.api.messagesAfter(chatId, from, CATCH_UP_PAGE);
        this.settle(page.items);
        for (const message of this.store.addMessages(chatId, page.items)) {
          if (message.sender !== this.store.me) newest = Math.max(newest, message.seq);
        }
        if (!page.items.length || conversation.maxSeq === from) break;
        if (!page.nextCursor && page.items.length < CATCH_UP_PAGE) break;
      }
      if (newest) this.arrived(chatId, newest);
    })()
      .catch((error) => this.report(error))
      .finally(() => this.catchingUp.delete(chatId));
    this.catchingUp.set(chatId, run);
    return run;
  }

  // ---- sending ----------------------------------------------------------------------------

  /**
   * Keep the message in the outbox (localStorage: it survives a reload), show it at once, then
   * store it. A chat's messages are sent one after another, so they keep the order they were
   * written in (seq follows the order of arrival).
   */
  send(chatId, text, clientMessageId = newId()) {
    const entry = { chatId, clientMessageId, text, createdAt: new Date().toISOString(), state: "pending" };
    this.outbox.put(entry, this.store.chats.get(chatId) || null);
    // Behind a message that waits for the network, it waits too (and says so).
    this.store.addPending(chatId, text, clientMessageId, { status: this.offline.has(chatId) ? "waiting" : "sending" });
    this.lastTypingSent.delete(chatId);
    return this.enqueue(entry);
  }

  /** A failed message, sent again with the same clientMessageId (never stored twice). */
  retry(chatId, message) {
    const entry = { chatId, clientMessageId: message.clientMessageId, text: message.text, createdAt: message.sentAt, state: "pending", error: null };
    this.outbox.put(entry, this.store.chats.get(chatId) || null);
    this.store.setPendingStatus(chatId, message.clientMessageId, "sending");
    return this.enqueue(entry);
  }

  /** What an earlier page left in the outbox: shown as it was, and what was pending is sent again. */
  restoreOutbox() {
    for (const chat of this.outbox.chats()) {
      if (chat?.chatId && !this.store.chats.has(chat.chatId)) this.store.upsertChat(chat);
    }
    for (const entry of this.outbox.entries()) {
      const failed = entry.state === "failed";
      this.store.addPending(entry.chatId, entry.text, entry.clientMessageId, {
        status: failed ? "failed" : "sending",
        sentAt: entry.createdAt,
      });
      if (!failed) this.enqueue(entry);
    }
  }

  enqueue(entry) {
    const chatId = entry.chatId;
    const previous = this.sending.get(chatId) || Promise.resolve();
    const next = previous.then(() => this.deliver(entry));
    this.sending.set(chatId, next);
    next.finally(() => {
      if (this.sending.get(chatId) === next) this.sending.delete(chatId);
    });
    return next;
  }

  async deliver({ chatId, text, clientMessageId }) {
    let serverErrors = 0;
    let networkWaits = 0;
    for (;;) {
      // Confirmed meanwhile (its message.new frame, a page of history, another tab): done.
      if (this.stopped || this.outbox.get(clientMessageId)?.state !== "pending") return;
      this.store.setPendingStatus(chatId, clientMessageId, "sending");
      try {
        const message = await this.api.sendMessage(chatId, text, clientMessageId);
        this.settle([message]);
        this.store.addMessages(chatId, [message]);
        return;
      } catch (error) {
        if (this.stopped) return; // signed out (a 401 too): the outbox keeps it for the next sign-in
        // The same clientMessageId again is safe: the API answers the original message.
        const kind = failureKind(error);
        if (kind === "network") {
          this.offline.add(chatId);
          this.store.setPendingStatus(chatId, clientMessageId, "waiting");
          await this.waitForNetwork(backoff(networkWaits));
          this.offline.delete(chatId);
          networkWaits += 1;
          continue;
        }
        if (kind === "rate") {
          await this.waitForNetwork((error.retryAfter || 1) * 1000, { wakeable: false });
          continue;
        }
        serverErrors += 1;
        if (kind === "server" && serverErrors < SERVER_ATTEMPTS) {
          await this.waitForNetwork(backoff(serverErrors - 1), { wakeable: false });
          continue;
        }
        this.outbox.update(clientMessageId, { state: "failed", error: describeError(error) });
        this.store.setPendingStatus(chatId, clientMessageId, "failed");
        this.report(error, chatId);
        return;
      }
    }
  }

  /** Wait `ms`, or less when the network may be back (the socket opened, the browser is online). */
  waitForNetwork(ms, { wakeable = true } = {}) {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakers.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      if (wakeable) this.wakers.add(done);
    });
  }

  /** The network may be back: sends waiting for it try now, receipts that failed go again. */
  wake() {
    for (const done of [...this.wakers]) done();
    for (const chatId of this.store.conversations.keys()) this.flushDelivered(chatId);
    this.seen(this.visibleChatId);
  }

  /** Stored messages of the caller's (an answer, a frame, a page): they leave the outbox. */
  settle(messages) {
    for (const message of messages) {
      if (message.sender === this.store.me && message.clientMessageId) this.outbox.remove(message.clientMessageId);
    }
  }

  /** Signed out: nothing more is sent from this page (the outbox stays for the next sign-in). */
  stop() {
    this.stopped = true;
    for (const timer of this.receiptTimers.values()) clearTimeout(timer);
    this.receiptTimers.clear();
    for (const done of [...this.wakers]) done();
  }

  typing(chatId) {
    const now = Date.now();
    if (now - (this.lastTypingSent.get(chatId) || 0) < TYPING_EVERY_MS) return;
    if (this.socket.send({ action: "typing", chatId })) this.lastTypingSent.set(chatId, now);
  }

  // ---- receipts ---------------------------------------------------------------------------

  /** The visible chat was seen: mark it read up to what is held (once per new message). */
  seen(chatId) {
    if (!chatId || chatId !== this.visibleChatId || document.visibilityState !== "visible") return;
    const conversation = this.store.conversation(chatId);
    if (!conversation.loaded) return;
    const upTo = conversation.maxSeq;
    const unseen = conversation.list().some((m) => m.seq && m.seq > conversation.readSent && m.seq <= upTo && m.sender !== this.store.me);
    if (unseen) {
      // read implies delivered (CONTRACT §2): no delivered receipt is needed up to here
      const before = { read: conversation.readSent, delivered: conversation.deliveredSent };
      conversation.readSent = upTo;
      conversation.deliveredSent = Math.max(conversation.deliveredSent, upTo);
      conversation.deliveredWanted = Math.max(conversation.deliveredWanted, upTo);
      this.receipt(chatId, "read", upTo).then((sent) => {
        if (sent || conversation.readSent !== upTo) return;
        conversation.readSent = before.read; // said again when the network is back (wake)
        if (conversation.deliveredSent === upTo) conversation.deliveredSent = before.delivered;
      });
    }
    this.store.markReadLocally(chatId);
  }

  /** Messages from others reached this device: read if the chat is on screen, else delivered. */
  arrived(chatId, seq) {
    const onScreen = chatId === this.visibleChatId && document.visibilityState === "visible";
    if (onScreen && this.store.conversation(chatId).loaded) this.seen(chatId);
    else this.delivered(chatId, seq);
  }

  /** A delivered receipt up to `seq`, coalesced per chat: one receipt for a burst of messages. */
  delivered(chatId, seq) {
    const conversation = this.store.conversation(chatId);
    if (seq <= conversation.deliveredWanted) return;
    conversation.deliveredWanted = seq;
    if (this.receiptTimers.has(chatId) || this.stopped) return;
    this.receiptTimers.set(
      chatId,
      setTimeout(() => {
        this.receiptTimers.delete(chatId);
        this.flushDelivered(chatId);
      }, RECEIPT_BATCH_MS),
    );
  }

  /** Send the chat's delivered marker if it is ahead of what was sent (markers only move forward). */
  async flushDelivered(chatId) {
    const conversation = this.store.conversation(chatId);
    const upTo = conversation.deliveredWanted;
    const before = conversation.deliveredSent;
    if (upTo <= before || this.stopped) return;
    conversation.deliveredSent = upTo;
    if (!(await this.receipt(chatId, "delivered", upTo)) && conversation.deliveredSent === upTo) {
      conversation.deliveredSent = before; // sent again when the network is back (wake)
    }
  }

  /** Over the socket when it is open, else over HTTP; true when it went out. */
  async receipt(chatId, type, upToSeq) {
    if (upToSeq < 1) return true;
    if (this.socket.send({ action: "receipt", chatId, type, upToSeq })) return true;
    try {
      await this.api.receipt(chatId, type, upToSeq);
      return true;
    } catch {
      return false;
    }
  }

  // ---- the WebSocket ----------------------------------------------------------------------

  async onOpen() {
    // The network is back: the outbox sends now, receipts that could not go out go.
    this.wake();
    // Whatever happened while the socket was closed (or before it first opened); the chat on
    // screen may not have loaded at all (opened without network, from the outbox's copy).
    const visible = this.visibleChatId;
    const load = visible && !this.store.conversation(visible).loaded ? [this.loadOlder(visible).catch(() => {})] : [];
    await Promise.all([this.refreshChats(), ...load, ...this.store.loadedChatIds().map((id) => this.catchUp(id))]);
  }

  async onFrame(frame) {
    const store = this.store;
    switch (frame.type) {
      case "message.new":
        await this.onMessage(frame.message);
        break;
      case "message.status":
        store.applyStatus(frame);
        break;
      case "presence":
        store.setPresence(frame);
        break;
      case "typing":
        if (frame.phoneNumber !== store.me) store.setTyping(frame.chatId, frame.phoneNumber);
        break;
      case "chat.updated":
        store.upsertChat(frame.chat);
        break;
      case "error":
        if (frame.code === "rate_limited") {
          // Messages go over HTTP (429 waits there); a frame this socket sent was over the limit.
          this.report(new ApiError(429, "rate_limited", frame.message || "Too many requests.", { retryAfter: Number(frame.retryAfter) || null }));
        } else {
          this.report(new ApiError(400, frame.code || "error", frame.message || "The server refused a request."));
        }
        break;
      default:
        break; // pong, and frames this client does not know
    }
  }

  async onMessage(message) {
    const store = this.store;
    const chatId = message.chatId;
    if (!store.chats.has(chatId)) {
      try {
        await this.ensureChat(chatId);
      } catch {
        return;
      }
    }
    const conversation = store.conversation(chatId);
    const before = conversation.maxSeq;
    this.settle([message]);
    const fresh = store.addMessages(chatId, [message]);
    store.messageFrom(chatId, message.sender);
    if (conversation.loaded && message.seq > before + 1 && conversation.maxSeq < message.seq) {
      this.catchUp(chatId); // a frame was missed: fill the gap
    }
    if (!fresh.length || message.sender === store.me) return;
    this.arrived(chatId, message.seq);
    if (chatId !== this.visibleChatId || document.visibilityState !== "visible") {
      const chat = store.chats.get(chatId);
      this.announce(`New message from ${memberName(chat, message.sender)} in ${chatTitle(chat, store.me)}: ${message.text}`);
    }
  }

  /** The socket never opened: a token that stopped working is refused at the handshake. */
  checkToken() {
    const now = Date.now();
    if (now - this.lastTokenCheck < 30000) return;
    this.lastTokenCheck = now;
    this.api.me().catch(() => {}); // a 401 signs out (Api's onUnauthorized)
  }
}
