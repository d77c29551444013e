// Where the HTTP and WebSocket APIs are.
//
// The HTTP API does not publish the WebSocket URL, so the client finds both this way, the
// first that gives a value winning:
//   1. `?api=` / `?ws=` in the page's address (remembered in localStorage; an empty value forgets),
//   2. what the Settings dialog saved (localStorage),
//   3. <meta name="chatflow-api-url"> / <meta name="chatflow-ws-url"> in index.html (for a deployment),
//   4. defaults: the HTTP API is the page's own origin (the local stack serves web/ itself);
//      the WebSocket API is the same host on port 3001 when the page is on port 3000 (the local
//      stack's defaults). Otherwise there is no WebSocket URL: the client works without real time
//      and says so until one is set.

const API_KEY = "chatflow.apiUrl";
const WS_KEY = "chatflow.wsUrl";

function meta(name) {
  return document.querySelector(`meta[name="${name}"]`)?.content.trim() || "";
}

function trimSlash(url) {
  return url.replace(/\/+$/, "");
}

function rememberFromQuery(params, name, key) {
  if (!params.has(name)) return;
  const value = params.get(name).trim();
  if (value) localStorage.setItem(key, value);
  else localStorage.removeItem(key);
}

export function defaultWebSocketUrl(apiBase) {
  const url = new URL(apiBase);
  if (url.port !== "3000") return "";
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  url.port = "3001";
  return trimSlash(`${url.protocol}//${url.host}`);
}

/** {apiBase, wsUrl, wsSource}: wsUrl is "" when unknown. */
export function loadConfig() {
  const params = new URLSearchParams(window.location.search);
  rememberFromQuery(params, "api", API_KEY);
  rememberFromQuery(params, "ws", WS_KEY);
  if (params.has("api") || params.has("ws")) {
    // Keep the address clean (and bookmarkable) once the values are remembered.
    params.delete("api");
    params.delete("ws");
    const query = params.toString();
    history.replaceState(null, "", `${window.location.pathname}${query ? `?${query}` : ""}${window.location.hash}`);
  }
  const apiBase = trimSlash(localStorage.getItem(API_KEY) || meta("chatflow-api-url") || window.location.origin);
  const chosenWs = localStorage.getItem(WS_KEY) || meta("chatflow-ws-url");
  const wsUrl = trimSlash(chosenWs || defaultWebSocketUrl(apiBase));
  return { apiBase, wsUrl, wsGuessed: !chosenWs && Boolean(wsUrl) };
}

/** Save (or, with empty values, forget) what the Settings dialog shows. */
export function saveConfig({ apiBase, wsUrl }) {
  for (const [key, value] of [
    [API_KEY, apiBase],
    [WS_KEY, wsUrl],
  ]) {
    if (value && value.trim()) localStorage.setItem(key, value.trim());
    else localStorage.removeItem(key);
  }
}

export function savedConfig() {
  return { apiBase: localStorage.getItem(API_KEY) || "", wsUrl: localStorage.getItem(WS_KEY) || "" };
}
