// The chat pane: header (name, online / last seen, typing), the history (older pages load
// when scrolled to the top), ticks on the caller's messages, and the composer.

import { describeError } from "../api.js";
import { fullTime, h, lastSeen, replaceChildren, shortTime } from "../dom.js";
import { chatTitle, directPeer, memberName } from "../store.js";

const TICKS = {
  sending: ["…", "Sending"],
  waiting: ["…", "Waiting for the network"],
  sent: ["✓", "Sent"],
  delivered: ["✓✓", "Delivered"],
  read: ["✓✓", "Read"],
  failed: ["!", "Failed"],
};
// Load older messages when the top of the history is this close (pixels).
const LOAD_OLDER_MARGIN = 120;

export class ConversationView {
  /**
   * @param {HTMLElement} root the chat pane
   * @param {object} deps {store, actions: {send, retry, typing, loadOlder, seen}}
   */
  constructor(root, { store, actions }) {
    this.root = root;
    this.store = store;
    this.actions = actions;
    this.chatId = null;
    this.elements = new Map(); // "<sender>|<clientMessageId>" -> <li> (stable from pending to stored)
    store.addEventListener("messages", (event) => {
      if (event.detail.chatId === this.chatId) this.renderMessages();
    });
    store.addEventListener("chats", () => this.chatId && this.renderHeader());
    store.addEventListener("presence", () => this.chatId && this.renderHeader());
    store.addEventListener("typing", (event) => {
      if (event.detail.chatId === this.chatId) this.renderHeader();
    });
    this.renderPlaceholder();
  }

  renderPlaceholder() {
    this.chatId = null;
    replaceChildren(this.root, h("div", { class: "placeholder" }, h("p", {}, "Choose a chat, or start a new one.")));
  }

  /** Show a chat (its history is loaded by the caller through actions.loadOlder). */
  open(chatId) {
    if (this.chatId === chatId) return;
    this.chatId = chatId;
    this.elements.clear();
    this.title = h("h2", { class: "chat-title", id: "chat-title", tabindex: "-1" });
    this.subtitle = h("p", { class: "chat-subtitle", "aria-live": "polite" });
    this.historyStatus = h("p", { class: "history-status", role: "status" });
    this.list = h("ol", { class: "messages", role: "log", "aria-live": "polite", "aria-labelledby": "chat-title" });
    this.scroller = h("div", { class: "messages-scroll", tabindex: "0", "aria-label": "Message history" }, this.historyStatus, this.list);
    this.scroller.addEventListener("scroll", () => this.onScroll(), { passive: true });
    this.error = h("p", { class: "form-error", role: "alert", hidden: true });
    this.input = h("textarea", {
      id: "composer-text",
      name: "text",
      rows: 1,
      maxlength: 4096,
      placeholder: "Write a message",
      autocomplete: "off",
      "aria-describedby": "composer-hint",
    });
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.form.requestSubmit();
      }
    });
    this.input.addEventListener("input", () => {
      if (this.input.value.trim()) this.actions.typing(this.chatId);
    });
    this.form = h(
      "form",
      { class: "composer", onsubmit: (event) => this.submit(event) },
      h("label", { for: "composer-text", class: "visually-hidden" }, "Message"),
      this.input,
      h("span", { id: "composer-hint", class: "visually-hidden" }, "Enter sends, Shift+Enter starts a new line."),
      h("button", { type: "submit", class: "primary" }, "Send"),
    );
    replaceChildren(
      this.root,
      h(
        "header",
        { class: "chat-header" },
        h("a", { href: "#/chats", class: "back", "aria-label": "Back to chats" }, "←"),
        h("div", { class: "chat-heading" }, this.title, this.subtitle),
      ),
      this.scroller,
      this.error,
      this.form,
    );
    this.renderHeader();
    this.renderMessages();
  }

  focusComposer() {
    this.input?.focus();
  }

  showError(error) {
    if (!this.error) return;
    this.error.textContent = error ? describeError(error) : "";
    this.error.hidden = !error;
  }

  renderHeader() {
    const chat = this.store.chats.get(this.chatId);
    if (!chat || !this.title) return;
    const me = this.store.me;
    this.title.textContent = chatTitle(chat, me);
    const typers = this.store.typersOf(this.chatId);
    let text;
    if (typers.length) {
      text = chat.type === "group" ? `${typers.map((p) => memberName(chat, p)).join(", ")} typing…` : "typing…";
    } else if (chat.type === "group") {
      text = `${chat.members.length} members: ${chat.members.map((m) => (m.phoneNumber === me ? "you" : m.displayName || m.phoneNumber)).join(", ")}`;
    } else {
      const peer = directPeer(chat, me);
      const presence = this.store.presence.get(peer);
      const title = chatTitle(chat, me);
      // Presence is known once a frame said so (it is sent when it changes); until then the number.
      if (presence) text = presence.online ? "online" : lastSeen(presence.lastSeenAt);
      else text = title === peer ? "" : peer;
    }
    this.subtitle.textContent = text;
    this.subtitle.classList.toggle("online", text === "online");
    this.subtitle.classList.toggle("typing", typers.length > 0);
  }

  // ---- history ----------------------------------------------------------------------------

  renderMessages() {
    if (!this.list) return;
    const conversation = this.store.conversation(this.chatId);
    const chat = this.store.chats.get(this.chatId);
    const messages = conversation.list();
    const stick = this.atBottom();
    const heightBefore = this.scroller.scrollHeight;
    const topBefore = this.scroller.scrollTop;
    const firstBefore = this.list.firstChild;

    const wanted = new Set();
    let previous = null;
    for (const message of messages) {
      const key = `${message.sender}|${message.clientMessageId}`;
      wanted.add(key);
      let li = this.elements.get(key);
      if (!li) {
        li = h("li", {});
        this.elements.set(key, li);
      }
      this.fillMessage(li, message, chat);
      const expected = previous ? previous.nextSibling : this.list.firstChild;
      if (expected !== li) this.list.insertBefore(li, expected);
      previous = li;
    }
    for (const [key, li] of this.elements) {
      if (!wanted.has(key)) {
        li.remove();
        this.elements.delete(key);
      }
    }

    if (!conversation.loaded) this.historyStatus.textContent = "Loading messages…";
    else if (conversation.hasOlder) this.historyStatus.textContent = "";
    else this.historyStatus.textContent = messages.length ? "The beginning of this chat." : "No messages yet. Say hello!";

    if (firstBefore && this.list.firstChild !== firstBefore && !stick) {
      // Older messages went in above: keep what the reader was looking at in place.
      this.scroller.scrollTop = topBefore + (this.scroller.scrollHeight - heightBefore);
    } else if (stick) {
      this.scrollToBottom();
    }
    this.actions.seen(this.chatId);
  }

  fillMessage(li, message, chat) {
    const me = this.store.me;
    const mine = message.sender === me;
    const status = mine ? this.store.statusOf(this.chatId, message) : null;
    const signature = `${message.seq}|${status}|${message.text}|${message.via}`;
    if (li.dataset.signature === signature) return;
    li.dataset.signature = signature;
    li.className = `message ${mine ? "mine" : "theirs"}${status === "failed" ? " failed" : ""}`;
    if (message.seq) li.dataset.seq = String(message.seq);
    li.dataset.clientMessageId = message.clientMessageId; // the same element from "sending" to stored
    const [tick, label] = TICKS[status] || [];
    replaceChildren(
      li,
      !mine && chat?.type === "group" ? h("p", { class: "sender" }, memberName(chat, message.sender)) : null,
      h("p", { class: "text" }, message.text),
      h(
        "p",
        { class: "meta" },
        h("span", { class: "visually-hidden" }, mine ? "You, " : `${memberName(chat, message.sender)}, `),
        // A reply by SMS to a forward of this chat (CONTRACT §7): say so.
        message.via === "sms" ? h("span", { class: "via-sms", title: "Sent as an SMS reply" }, "via SMS") : null,
        h("time", { datetime: message.sentAt, title: fullTime(message.sentAt) }, shortTime(message.sentAt)),
        mine ? h("span", { class: `ticks ${status}`, title: label, dataset: { status } }, h("span", { "aria-hidden": "true" }, tick), h("span", { class: "visually-hidden" }, label)) : null,
      ),
      // A message the API refused (or that failed after several tries): the same
      // clientMessageId again on Retry (never stored twice).
      status === "failed"
        ? h(
            "p",
            { class: "failed-line" },
            h("span", { "aria-hidden": "true" }, "Failed"),
            " ",
            h("button", { type: "button", class: "link-button", onclick: () => this.actions.retry(this.chatId, message) }, "Retry"),
          )
        : null,
    );
  }

  atBottom() {
    const s = this.scroller;
    return !s || s.scrollHeight - s.scrollTop - s.clientHeight < 40;
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }

  onScroll() {
    if (this.scroller.scrollTop < LOAD_OLDER_MARGIN) this.actions.loadOlder(this.chatId);
    if (this.atBottom()) this.actions.seen(this.chatId);
  }

  /** After a page loaded: keep loading while the history does not fill the pane yet. */
  needsMore() {
    return this.scroller && this.scroller.scrollHeight <= this.scroller.clientHeight + LOAD_OLDER_MARGIN;
  }

  /** Scroll to a message (a search result) and highlight it; false when it is not loaded. */
  reveal(seq) {
    const li = this.list?.querySelector(`li[data-seq="${seq}"]`);
    if (!li) return false;
    li.scrollIntoView({ block: "center" });
    li.classList.add("highlight");
    setTimeout(() => li.classList.remove("highlight"), 2500);
    return true;
  }

  // ---- composer ---------------------------------------------------------------------------

  submit(event) {
    event.preventDefault();
    const text = this.input.value.trim();
    if (!text) return;
    if (text.length > 4096) {
      this.showError(new Error("A message has at most 4096 characters."));
      return;
    }
    this.showError(null);
    this.input.value = "";
    this.actions.send(this.chatId, text);
    this.scrollToBottom();
    this.input.focus();
  }
}
