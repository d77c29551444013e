// What the chat screens do, between the views, the HTTP API, the WebSocket and the store:
// loading chats and history, sending (optimistic, idempotent by clientMessageId), receipts,
// typing, the frames of the WebSocket, and catching up after a reconnect with
// GET .../messages?afterSeq= (no gap, no duplicate: the store dedupes by messageId).

import { ApiError } from "./api.js";
import { newId } from "./dom.js";
import { chatTitle, memberName } from "./store.js";

const TYPING_EVERY_MS = 3000;
const SEND_ATTEMPTS = 3;
const HISTORY_PAGE = 30;
const CATCH_UP_PAGE = 100;

function transient(error) {
  return error instanceof ApiError && (error.status === 0 || error.status === 429 || error.status >= 500);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class Messaging {
  /**
   * @param {object} deps {api, store, socket, announce(text), report(error)}
   */
  constructor({ api, store, socket, announce, report }) {
    this.api = api;
    this.store = store;
    this.socket = socket;
    this.announce = announce;
    this.report = report;
    this.visibleChatId = null; // the chat on screen (null: the list, another page, a hidden tab)
    this.loadingOlder = new Set();
    this.catchingUp = new Map(); // chatId -> promise
    this.lastTypingSent = new Map();
    this.sending = new Map(); // chatId -> the promise of its last send (sends go in order)
    this.lastTokenCheck = 0;

    socket.addEventListener("frame", (event) => this.onFrame(event.detail));
    socket.addEventListener("open", () => this.onOpen());
    socket.addEventListener("failed", () => this.checkToken());
  }

  // ---- chats ------------------------------------------------------------------------------

  async loadChats() {
    const page = await this.api.listChats(null);
    this.store.setChatPage(page, { append: false });
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
      for (;;) {
        const from = conversation.maxSeq;
        const page = await this.api.messagesAfter(chatId, from, CATCH_UP_PAGE);
        this.store.addMessages(chatId, page.items);
        if (!page.items.length || conversation.maxSeq === from) break;
        if (!page.nextCursor && page.items.length < CATCH_UP_PAGE) break;
      }
    })()
      .catch((error) => this.report(error))
      .finally(() => this.catchingUp.delete(chatId));
    this.catchingUp.set(chatId, run);
    return run;
  }

  // ---- sending ----------------------------------------------------------------------------

  /**
   * Show the message at once, then store it. A chat's messages are sent one after another,
   * so they keep the order they were written in (seq follows the order of arrival).
   */
  send(chatId, text, clientMessageId = newId()) {
    if (!this.store.conversation(chatId).byKey.has(`c:${clientMessageId}`)) {
      this.store.addPending(chatId, text, clientMessageId);
    } else {
      this.store.setPendingStatus(chatId, clientMessageId, "sending");
    }
    this.lastTypingSent.delete(chatId);
    const previous = this.sending.get(chatId) || Promise.resolve();
    const next = previous.then(() => this.deliver(chatId, text, clientMessageId));
    this.sending.set(chatId, next);
    next.finally(() => {
      if (this.sending.get(chatId) === next) this.sending.delete(chatId);
    });
    return next;
  }

  async deliver(chatId, text, clientMessageId) {
    for (let attempt = 1; ; attempt += 1) {
      try {
        const message = await this.api.sendMessage(chatId, text, clientMessageId);
        this.store.addMessages(chatId, [message]);
        return;
      } catch (error) {
        // The same clientMessageId again is safe: the API answers the original message.
        if (transient(error) && attempt < SEND_ATTEMPTS) {
          await sleep((error.retryAfter || attempt) * 1000);
          continue;
        }
        this.store.setPendingStatus(chatId, clientMessageId, "failed");
        this.report(error, chatId);
        return;
      }
    }
  }

  retry(chatId, message) {
    return this.send(chatId, message.text, message.clientMessageId);
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
      conversation.readSent = upTo;
      conversation.deliveredSent = Math.max(conversation.deliveredSent, upTo);
      this.receipt(chatId, "read", upTo);
    }
    this.store.markReadLocally(chatId);
  }

  delivered(chatId, seq) {
    const conversation = this.store.conversation(chatId);
    if (seq <= conversation.deliveredSent) return;
    conversation.deliveredSent = seq;
    this.receipt(chatId, "delivered", seq);
  }

  receipt(chatId, type, upToSeq) {
    if (upToSeq < 1) return;
    if (this.socket.send({ action: "receipt", chatId, type, upToSeq })) return;
    this.api.receipt(chatId, type, upToSeq).catch(() => {}); // best effort: the next one covers it
  }

  // ---- the WebSocket ----------------------------------------------------------------------

  async onOpen() {
    // Whatever happened while the socket was closed (or before it first opened).
    await Promise.all([this.refreshChats(), ...this.store.loadedChatIds().map((id) => this.catchUp(id))]);
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
        this.report(new ApiError(400, frame.code || "error", frame.message || "The server refused a request."));
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
    const fresh = store.addMessages(chatId, [message]);
    store.messageFrom(chatId, message.sender);
    if (conversation.loaded && message.seq > before + 1 && conversation.maxSeq < message.seq) {
      this.catchUp(chatId); // a frame was missed: fill the gap
    }
    if (!fresh.length || message.sender === store.me) return;
    if (chatId === this.visibleChatId && document.visibilityState === "visible") {
      this.seen(chatId);
    } else {
      this.delivered(chatId, message.seq);
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
