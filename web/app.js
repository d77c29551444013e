// ChatFlow's web client: the entry point. It signs in, builds the views, routes by the
// address's hash (#/chats, #/chats/<chatId>, #/campaigns, #/campaigns/<campaignId>) and
// runs the WebSocket. See docs/web-client.md.

import { Api, clearSession, describeError, loadSession, saveSession } from "./js/api.js";
import { loadConfig } from "./js/config.js";
import { $, h } from "./js/dom.js";
import { Messaging } from "./js/messaging.js";
import { Outbox } from "./js/outbox.js";
import { RealtimeSocket } from "./js/socket.js";
import { ChatStore } from "./js/store.js";
import { CampaignsView } from "./js/views/campaigns.js";
import { ChatListView } from "./js/views/chatlist.js";
import { ConversationView } from "./js/views/conversation.js";
import { newDirectChatDialog, newGroupDialog, settingsDialog } from "./js/views/dialogs.js";
import { SignInView } from "./js/views/signin.js";

const config = loadConfig();
let session = loadSession();
const api = new Api(config.apiBase, () => session?.token || null, () => signOut({ expired: true }));

const views = {
  signin: $("#signin-view"),
  chats: $("#chats-view"),
  campaigns: $("#campaigns-view"),
};
const signInView = new SignInView(views.signin, api, onSignedIn, () => settingsDialog(config));
const campaignsView = new CampaignsView(views.campaigns, api);

/** The signed-in part: rebuilt at each sign-in, torn down at sign-out. */
let app = null;

// ---- feedback ------------------------------------------------------------------------------

let toastTimer = null;
function toast(text) {
  const box = $("#toast");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (box.hidden = true), 8000);
}

function announce(text) {
  const region = $("#announcer");
  region.textContent = "";
  setTimeout(() => (region.textContent = text), 50);
}

const CONNECTION_TEXT = {
  open: "Live",
  connecting: "Connecting…",
  waiting: "Offline, reconnecting…",
  off: "No real-time updates (set the WebSocket URL in Settings)",
};

function showConnection({ state, retryInMs }) {
  const line = $(".connection");
  line.hidden = false;
  line.dataset.state = state;
  line.textContent =
    state === "waiting" && retryInMs ? `Offline, retrying in ${Math.ceil(retryInMs / 1000)} s` : CONNECTION_TEXT[state];
}

// ---- signing in and out ----------------------------------------------------------------------

function onSignedIn(created) {
  session = { token: created.token, expiresAt: created.expiresAt, user: created.user };
  saveSession(session);
  start();
}

async function signOut({ expired = false } = {}) {
  if (!session) return; // several requests may answer 401 at once
  const outbox = new Outbox(session.user.phoneNumber);
  if (!expired) {
    // Signing out forgets what waits in the outbox (on a shared computer nothing stays behind):
    // ask first. A session that ended keeps it: signing in again sends it.
    const waiting = outbox.entries().length;
    const noun = waiting === 1 ? "message is" : "messages are";
    if (waiting && !window.confirm(`${waiting} ${noun} not sent yet and will be lost. Sign out anyway?`)) return;
    outbox.clear();
  }
  const token = session.token;
  session = null;
  clearSession();
  stop();
  if (token && !expired) {
    // The token stops working at once; a failure here changes nothing for this page.
    await new Api(config.apiBase, () => token, null).signOut().catch(() => {});
  }
  if (window.location.hash) history.replaceState(null, "", window.location.pathname + window.location.search);
  showSignIn();
  if (expired) toast("Your session has ended. Sign in again.");
}

function showSignIn() {
  for (const element of [".nav", ".account", ".connection"]) $(element).hidden = true;
  views.chats.hidden = true;
  campaignsView.hide();
  signInView.show();
}

function isOperator() {
  return Boolean(session?.user?.roles?.includes("operator"));
}

// ---- the signed-in app -------------------------------------------------------------------------

function start() {
  stop();
  signInView.hide();
  const user = session.user;
  $(".account-name").textContent = user.displayName || user.phoneNumber;
  $(".account").hidden = false;
  $(".nav").hidden = false;
  $('[data-nav="campaigns"]').hidden = !isOperator();

  const store = new ChatStore(user.phoneNumber);
  const socket = new RealtimeSocket(config.wsUrl, session.token);
  socket.addEventListener("state", (event) => showConnection(event.detail));
  const report = (error, chatId) => {
    if (chatId && chatId === app?.messaging.visibleChatId) app.conversation.showError(error);
    else toast(describeError(error));
  };
  const outbox = new Outbox(user.phoneNumber);
  const messaging = new Messaging({ api, store, socket, outbox, announce, report });

  const listPane = h("div", { class: "list-pane" });
  const chatPane = h("div", { class: "chat-pane" });
  views.chats.replaceChildren(listPane, chatPane);
  const openChat = (chat) => {
    window.location.hash = `#/chats/${encodeURIComponent(chat.chatId)}`;
  };
  const chatList = new ChatListView(listPane, {
    api,
    store,
    actions: {
      newChat: () => newDirectChatDialog(api, (chat) => openChat(store.upsertChat(chat))),
      newGroup: () => newGroupDialog(api, (chat) => openChat(store.upsertChat(chat))),
      loadMore: () => messaging.loadMoreChats(),
      openSearchResult: (message) => revealMessage(message),
    },
  });
  const conversation = new ConversationView(chatPane, {
    store,
    actions: {
      send: (chatId, text) => messaging.send(chatId, text),
      retry: (chatId, message) => messaging.retry(chatId, message),
      typing: (chatId) => messaging.typing(chatId),
      loadOlder: (chatId) => loadOlder(chatId),
      seen: (chatId) => messaging.seen(chatId),
    },
  });
  app = { store, socket, messaging, chatList, conversation };

  // Messages an earlier page could not send: shown again, and sent (same clientMessageId).
  messaging.restoreOutbox();
  messaging
    .loadChats()
    .catch((error) => chatList.showError(error))
    .finally(() => socket.start());
  route();
}

function stop() {
  if (!app) return;
  app.messaging.stop();
  app.socket.stop();
  app.store.dispose();
  views.chats.replaceChildren();
  app = null;
}

async function loadOlder(chatId) {
  if (!app) return;
  try {
    await app.messaging.loadOlder(chatId);
  } catch {
    return; // reported by Messaging
  }
  // A short history does not fill the pane: there is no scrolling to ask for more.
  if (app?.conversation.chatId === chatId && app.conversation.needsMore() && app.store.conversation(chatId).hasOlder) {
    await loadOlder(chatId);
  }
}

/** Open a search result's chat and scroll to the message (loading older pages if needed). */
async function revealMessage(message) {
  window.location.hash = `#/chats/${encodeURIComponent(message.chatId)}`;
  await route();
  for (let page = 0; page < 20 && app; page += 1) {
    if (app.conversation.reveal(message.seq)) return;
    const conversation = app.store.conversation(message.chatId);
    if (conversation.loaded && !conversation.hasOlder) break;
    await app.messaging.loadOlder(message.chatId).catch(() => {});
  }
}

// ---- routing -------------------------------------------------------------------------------

async function route() {
  if (!app) return;
  const [, section = "chats", id = ""] = window.location.hash.split("/");
  const itemId = decodeURIComponent(id);
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (section === "campaigns") {
    if (!isOperator()) {
      toast("Campaigns are for operators only.");
      window.location.hash = "#/chats";
      return;
    }
    views.chats.hidden = true;
    app.messaging.visibleChatId = null;
    campaignsView.show(itemId || null);
    $("#main").focus();
    return;
  }
  campaignsView.hide();
  views.chats.hidden = false;
  views.chats.classList.toggle("chat-open", Boolean(itemId));
  app.chatList.select(itemId || null);
  if (!itemId) {
    app.messaging.visibleChatId = null;
    app.conversation.renderPlaceholder();
    return;
  }
  try {
    await app.messaging.ensureChat(itemId);
  } catch (error) {
    toast(describeError(error));
    window.location.hash = "#/chats";
    return;
  }
  if (!app) return;
  const opening = app.conversation.chatId !== itemId;
  app.messaging.visibleChatId = itemId;
  app.conversation.open(itemId);
  if (opening) {
    app.conversation.focusComposer();
    const chat = app.store.chats.get(itemId);
    if (chat && chat.type === "group") app.messaging.loadPresence([chat]);
    if (!app.store.conversation(itemId).loaded) await loadOlder(itemId);
    else app.messaging.catchUp(itemId);
  }
  app.messaging.seen(itemId);
}

window.addEventListener("hashchange", () => route());
document.addEventListener("visibilitychange", () => {
  if (!app || document.visibilityState !== "visible") return;
  app.socket.retryNow();
  app.messaging.seen(app.messaging.visibleChatId);
});
window.addEventListener("online", () => {
  app?.socket.retryNow();
  app?.messaging.wake();
});
$('[data-action="sign-out"]').addEventListener("click", () => signOut());
$('[data-action="settings"]').addEventListener("click", () => settingsDialog(config));

// ---- boot ------------------------------------------------------------------------------------

async function boot() {
  if (!session) {
    showSignIn();
    return;
  }
  start();
  try {
    // Roles or the profile may have changed since the last visit.
    const user = await api.me();
    if (!session) return;
    session = { ...session, user };
    saveSession(session);
    $('[data-nav="campaigns"]').hidden = !isOperator();
    $(".account-name").textContent = user.displayName || user.phoneNumber;
  } catch (error) {
    if (session) toast(describeError(error)); // a 401 already signed out
  }
}

boot();
