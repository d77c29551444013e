// The list pane: chats (most recent first, with unread counts, last message, online dot and
// typing), "load more", new chat / new group, and message search.

import { describeError } from "../api.js";
import { h, replaceChildren, shortTime } from "../dom.js";
import { chatTitle, directPeer, memberName } from "../store.js";

export class ChatListView {
  /**
   * @param {HTMLElement} root the list pane
   * @param {object} deps {api, store, actions: {newChat, newGroup, loadMore, openSearchResult}}
   */
  constructor(root, { api, store, actions }) {
    this.root = root;
    this.api = api;
    this.store = store;
    this.actions = actions;
    this.selectedChatId = null;
    this.searchQuery = "";
    this.build();
    this.renderList();
    for (const type of ["chats", "presence", "typing"]) store.addEventListener(type, () => this.renderList());
  }

  build() {
    this.list = h("ul", { class: "chat-list", "aria-labelledby": "chats-title" });
    this.empty = h("p", { class: "empty", role: "status" });
    this.more = h("button", { type: "button", class: "load-more", hidden: true, onclick: () => this.loadMore() }, "Load more chats");
    this.listError = h("p", { class: "form-error", role: "alert", hidden: true });
    this.searchInput = h("input", { id: "search-q", type: "search", name: "q", placeholder: "Search messages", autocomplete: "off" });
    this.searchScope = h(
      "select",
      { id: "search-scope", name: "scope", "aria-label": "Where to search" },
      h("option", { value: "all" }, "All chats"),
      h("option", { value: "chat", disabled: true }, "This chat"),
    );
    this.results = h("section", { class: "search-results", "aria-labelledby": "search-title", hidden: true });
    const searchForm = h(
      "form",
      { class: "search-form", role: "search", onsubmit: (event) => this.search(event) },
      h("label", { for: "search-q", class: "visually-hidden" }, "Search messages"),
      this.searchInput,
      this.searchScope,
      h("button", { type: "submit" }, "Search"),
    );
    replaceChildren(
      this.root,
      h(
        "div",
        { class: "list-toolbar" },
        h("h2", { id: "chats-title" }, "Chats"),
        h("button", { type: "button", onclick: () => this.actions.newChat() }, "New chat"),
        h("button", { type: "button", onclick: () => this.actions.newGroup() }, "New group"),
      ),
      searchForm,
      this.results,
      this.listError,
      this.list,
      this.empty,
      this.more,
    );
  }

  select(chatId) {
    this.selectedChatId = chatId;
    const option = this.searchScope.querySelector('option[value="chat"]');
    option.disabled = !chatId;
    if (!chatId && this.searchScope.value === "chat") this.searchScope.value = "all";
    this.renderList();
  }

  showError(error) {
    this.listError.textContent = error ? describeError(error) : "";
    this.listError.hidden = !error;
    this.renderList();
  }

  async loadMore() {
    this.more.disabled = true;
    try {
      await this.actions.loadMore();
    } finally {
      this.more.disabled = false;
    }
  }

  renderList() {
    const chats = this.store.sortedChats();
    this.items ||= new Map(); // chatId -> <li>, reused so that focus and screen readers keep their place
    const wanted = new Set(chats.map((chat) => chat.chatId));
    for (const [chatId, li] of this.items) {
      if (!wanted.has(chatId)) {
        li.remove();
        this.items.delete(chatId);
      }
    }
    let previous = null;
    for (const chat of chats) {
      let li = this.items.get(chat.chatId);
      if (!li) {
        li = h("li", {}, h("a", { class: "chat-item", dataset: { chatId: chat.chatId } }));
        this.items.set(chat.chatId, li);
      }
      this.fillItem(li.firstChild, chat);
      const expected = previous ? previous.nextSibling : this.list.firstChild;
      if (expected !== li) this.list.insertBefore(li, expected); // only moves what is out of place
      previous = li;
    }
    this.empty.textContent = this.store.chatsLoaded ? "No chats yet. Start one with “New chat”." : "Loading chats…";
    this.empty.hidden = chats.length > 0 || !this.listError.hidden;
    this.more.hidden = !this.store.chatsCursor;
  }

  fillItem(link, chat) {
    const me = this.store.me;
    const title = chatTitle(chat, me);
    const peer = directPeer(chat, me);
    const online = peer && this.store.presence.get(peer)?.online;
    const typers = this.store.typersOf(chat.chatId);
    const last = chat.lastMessage;
    let preview = "No messages yet";
    if (typers.length) preview = chat.type === "group" ? `${memberName(chat, typers[0])} is typing…` : "typing…";
    else if (last) {
      const who = last.sender === me ? "You: " : chat.type === "group" ? `${memberName(chat, last.sender)}: ` : "";
      preview = `${who}${last.text}`;
    }
    const unread = chat.unreadCount || 0;
    link.className = `chat-item${unread ? " unread" : ""}`;
    link.href = `#/chats/${encodeURIComponent(chat.chatId)}`;
    if (chat.chatId === this.selectedChatId) link.setAttribute("aria-current", "true");
    else link.removeAttribute("aria-current");
    replaceChildren(
      link,
      h(
        "span",
        { class: "avatar", "aria-hidden": "true" },
        avatarText(chat, title),
        online ? h("span", { class: "online-dot" }) : null,
      ),
      h(
        "span",
        { class: "chat-item-body" },
        h(
          "span",
          { class: "chat-item-top" },
          h("span", { class: "chat-item-title" }, title),
          online ? h("span", { class: "visually-hidden" }, " (online)") : null,
          h("time", { class: "chat-item-time", datetime: chat.lastActivityAt }, last ? shortTime(last.sentAt) : ""),
        ),
        h(
          "span",
          { class: "chat-item-bottom" },
          h("span", { class: `chat-item-preview${typers.length ? " typing" : ""}` }, preview),
          unread ? h("span", { class: "badge", "aria-label": `${unread} unread` }, String(unread)) : null,
        ),
      ),
    );
  }

  // ---- search -----------------------------------------------------------------------------

  async search(event, cursor = null) {
    event?.preventDefault();
    const q = cursor ? this.searchQuery : this.searchInput.value.trim();
    if (!q) {
      this.closeResults();
      return;
    }
    this.searchQuery = q;
    const chatId = this.searchScope.value === "chat" ? this.selectedChatId : null;
    if (!cursor) this.renderResults({ status: "Searching…" });
    try {
      const page = await this.api.search(q, { chatId, cursor });
      this.renderResults({ page, append: Boolean(cursor) });
    } catch (error) {
      this.renderResults({ status: describeError(error), error: true });
    }
  }

  /** "Alice · 14:05" in a direct chat, "Team · Bob · 14:05" in a group. */
  resultPlace(chat, message) {
    const me = this.store.me;
    const who = message.sender === me ? "You" : memberName(chat, message.sender);
    const parts = chat?.type === "group" ? [chatTitle(chat, me), who] : [chat ? chatTitle(chat, me) : who];
    if (chat?.type !== "group" && message.sender === me) parts.push("you");
    return [...parts, shortTime(message.sentAt)].join(" · ");
  }

  closeResults() {
    this.results.hidden = true;
    replaceChildren(this.results);
    this.searchInput.value = "";
    this.searchInput.focus();
  }

  renderResults({ page, append = false, status = "", error = false }) {
    this.results.hidden = false;
    if (!append) {
      this.resultList = h("ul", { class: "result-list" });
      replaceChildren(
        this.results,
        h(
          "div",
          { class: "results-header" },
          h("h3", { id: "search-title" }, `Results for “${this.searchQuery}”`),
          h("button", { type: "button", class: "link-button", onclick: () => this.closeResults() }, "Close"),
        ),
        h("p", { class: error ? "form-error" : "hint", role: error ? "alert" : "status" }, status),
        this.resultList,
      );
    }
    if (!page) return;
    this.results.querySelector(".results-more")?.remove();
    for (const message of page.items) {
      const chat = this.store.chats.get(message.chatId);
      this.resultList.append(
        h(
          "li",
          {},
          h(
            "a",
            {
              href: `#/chats/${encodeURIComponent(message.chatId)}`,
              class: "result",
              onclick: (click) => {
                click.preventDefault();
                this.actions.openSearchResult(message);
              },
            },
            h("span", { class: "result-where" }, this.resultPlace(chat, message)),
            h("span", { class: "result-text" }, message.text),
          ),
        ),
      );
    }
    const statusLine = this.results.querySelector("[role=status], [role=alert]");
    const count = this.resultList.children.length;
    if (statusLine) statusLine.textContent = count ? `${count}${page.nextCursor ? "+" : ""} message${count === 1 ? "" : "s"} found.` : "No messages found.";
    if (page.nextCursor) {
      this.results.append(
        h("button", { type: "button", class: "load-more results-more", onclick: () => this.search(null, page.nextCursor) }, "More results"),
      );
    }
  }
}

/** Initials of a name, the last two digits of a number, "#" for a group without a name. */
function avatarText(chat, title) {
  if (/^\+?[\d\s-]+$/.test(title)) return title.replace(/\D/g, "").slice(-2);
  const words = title.split(/\s+/).filter(Boolean);
  return (words.length > 1 ? words[0][0] + words[1][0] : title.slice(0, 1) || "#").toUpperCase();
}
