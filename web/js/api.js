// The HTTP API (CONTRACT §1, §2, §5): one fetch wrapper, errors turned into ApiError with
// words a person understands, and the session kept in localStorage.

const SESSION_KEY = "chatflow.session";
const REQUEST_TIMEOUT_MS = 20000;

export class ApiError extends Error {
  constructor(status, code, message, { details = [], retryAfter = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
    this.retryAfter = retryAfter;
  }
}

// The API's own messages are written for people ("what went wrong and what to do",
// CONTRACT §0) and are shown as they are; these codes get other words because theirs speak
// of HTTP or would leak nothing useful.
const PLAIN_WORDS = {
  not_found: "That doesn't exist, or you are not a member of it.",
  forbidden: "You are not allowed to do that.",
  network_error: "Can't reach ChatFlow. Check your connection and try again.",
};

function secondsText(seconds) {
  if (!seconds) return "a little later";
  if (seconds < 90) return `in ${seconds} seconds`;
  return `in ${Math.ceil(seconds / 60)} minutes`;
}

/** One sentence (or two) to show a person for any error thrown by this module or the browser. */
export function describeError(error) {
  if (!(error instanceof ApiError)) return error?.message || String(error);
  if (error.status === 429) return `Too many attempts. Try again ${secondsText(error.retryAfter)}.`;
  if (error.status === 413) return "That is too large to send.";
  if (error.status >= 500 && !PLAIN_WORDS[error.code]) {
    return "ChatFlow had a problem on its side. Try again in a moment.";
  }
  let text = PLAIN_WORDS[error.code] || error.message || `The request failed (HTTP ${error.status}).`;
  const fields = (error.details || []).filter((d) => d && d.message);
  if (fields.length && !PLAIN_WORDS[error.code]) {
    text += ` ${fields.map((d) => `${d.field}: ${d.message}`).join("; ")}.`;
  }
  return text;
}

// ---- session -----------------------------------------------------------------------------

export function loadSession() {
  try {
    const session = JSON.parse(localStorage.getItem(SESSION_KEY) || "null");
    if (!session?.token) return null;
    if (session.expiresAt && Date.parse(session.expiresAt) < Date.now()) return null;
    return session;
  } catch {
    return null;
  }
}

export function saveSession(session) {
  localStorage.setItem(SESSION_KEY, JSON.stringify(session));
}

export function clearSession() {
  localStorage.removeItem(SESSION_KEY);
}

// ---- client ------------------------------------------------------------------------------

export class Api {
  /**
   * @param {string} base the HTTP API's base URL
   * @param {() => string|null} token the current session token
   * @param {() => void} onUnauthorized called when a signed-in request answers 401
   */
  constructor(base, token, onUnauthorized) {
    this.base = base;
    this.token = token;
    this.onUnauthorized = onUnauthorized;
  }

  async request(method, path, { body, query, signal } = {}) {
    const url = new URL(this.base + path);
    for (const [name, value] of Object.entries(query || {})) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, String(value));
    }
    const headers = {};
    const token = this.token();
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers["content-type"] = "application/json";
    // A request that hangs is a failure too (sending retries it with the same clientMessageId).
    const timeout = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
    let response;
    try {
      response = await fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      });
    } catch (error) {
      if (signal?.aborted) throw error;
      throw new ApiError(0, "network_error", PLAIN_WORDS.network_error);
    }
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (response.ok) return data;
    const problem = data?.error || {};
    const error = new ApiError(
      response.status,
      problem.code || `http_${response.status}`,
      problem.message || data?.message || response.statusText,
      { details: problem.details || [], retryAfter: Number(response.headers.get("retry-after")) || null },
    );
    if (response.status === 401 && token && this.onUnauthorized) this.onUnauthorized(error);
    throw error;
  }

  get(path, query, options) {
    return this.request("GET", path, { query, ...options });
  }

  post(path, body = {}) {
    return this.request("POST", path, { body });
  }

  // identity
  startVerification(phoneNumber) {
    return this.post("/v1/verifications", { phoneNumber });
  }
  signIn(phoneNumber, code) {
    return this.post("/v1/sessions", code ? { phoneNumber, code } : { phoneNumber });
  }
  signOut() {
    return this.request("DELETE", "/v1/sessions/current");
  }
  me() {
    return this.get("/v1/users/me");
  }

  // chats and messages
  listChats(cursor, limit = 20) {
    return this.get("/v1/chats", { limit, cursor });
  }
  getChat(chatId) {
    return this.get(`/v1/chats/${encodeURIComponent(chatId)}`);
  }
  createDirectChat(phoneNumber) {
    return this.post("/v1/chats", { type: "direct", members: [phoneNumber] });
  }
  createGroupChat(name, members) {
    return this.post("/v1/chats", { type: "group", name, members });
  }
  /** History, newest first (a cursor pages back in time). */
  /** Each member of the chat: online now, or when last seen (frames only tell changes). */
  chatPresence(chatId) {
    return this.get(`/v1/chats/${encodeURIComponent(chatId)}/presence`);
  }
  listMessages(chatId, { cursor, limit = 30 } = {}) {
    return this.get(`/v1/chats/${encodeURIComponent(chatId)}/messages`, { limit, cursor });
  }
  /** Catch-up: messages with seq > afterSeq, oldest first. */
  messagesAfter(chatId, afterSeq, limit = 100) {
    return this.get(`/v1/chats/${encodeURIComponent(chatId)}/messages`, { afterSeq, limit });
  }
  sendMessage(chatId, text, clientMessageId) {
    return this.post(`/v1/chats/${encodeURIComponent(chatId)}/messages`, { text, clientMessageId });
  }
  receipt(chatId, type, upToSeq) {
    return this.post(`/v1/chats/${encodeURIComponent(chatId)}/receipts`, { type, upToSeq });
  }
  search(q, { chatId, cursor, limit = 20 } = {}) {
    return this.get("/v1/search", { q, chatId, cursor, limit });
  }

  // campaigns (operators)
  listCampaigns(cursor, limit = 20) {
    return this.get("/v1/campaigns", { limit, cursor });
  }
  getCampaign(campaignId) {
    return this.get(`/v1/campaigns/${encodeURIComponent(campaignId)}`);
  }
  createCampaign(fields) {
    return this.post("/v1/campaigns", fields);
  }
  /** The text one recipient would get, its encoding, SMS parts and length (nothing stored). */
  previewCampaignMessage(template, variables) {
    return this.post("/v1/campaigns/preview", { template, variables });
  }
  startUpload(campaignId) {
    return this.post(`/v1/campaigns/${encodeURIComponent(campaignId)}/uploads`);
  }
  getUpload(campaignId, uploadId) {
    return this.get(`/v1/campaigns/${encodeURIComponent(campaignId)}/uploads/${encodeURIComponent(uploadId)}`);
  }
  /** Pause, resume or cancel a campaign: the campaign with its new status (409 when not allowed). */
  controlCampaign(campaignId, action) {
    return this.post(`/v1/campaigns/${encodeURIComponent(campaignId)}/${action}`);
  }
  /** Messages and SMS parts of the recipients loaded so far. */
  campaignEstimate(campaignId) {
    return this.get(`/v1/campaigns/${encodeURIComponent(campaignId)}/estimate`);
  }

  /** PUT a file to a presigned upload URL (another origin: S3), with the ticket's headers if any. */
  async putFile(ticket, file) {
    const headers = { ...(ticket.headers || {}) };
    let response;
    try {
      response = await fetch(ticket.uploadUrl, { method: "PUT", headers, body: file });
    } catch {
      throw new ApiError(0, "network_error", "The file could not be sent to storage. Check your connection and try again.");
    }
    if (!response.ok) {
      throw new ApiError(response.status, "upload_failed", `Storage refused the file (HTTP ${response.status}). Try again.`);
    }
  }
}
