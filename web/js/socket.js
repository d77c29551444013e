// The WebSocket API (CONTRACT §3): connects with ?token=, pings every 4 minutes (API Gateway
// closes sockets idle for 10), and reconnects with exponential backoff and jitter.
//
// Events (an EventTarget):
//   "state"  detail {state: "connecting" | "open" | "waiting" | "off", retryInMs?}
//   "open"   detail {reconnected: boolean}: the app catches up with GET ...?afterSeq= then
//   "frame"  detail: the parsed server frame ({type: "message.new", ...})
//   "failed" the socket closed before it ever opened (a bad token is refused at the handshake)

const PING_MS = 4 * 60 * 1000;
const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 30 * 1000;
// A connection that stayed open this long resets the backoff.
const STABLE_MS = 10 * 1000;

export class RealtimeSocket extends EventTarget {
  constructor(url, token) {
    super();
    this.url = url;
    this.token = token;
    this.socket = null;
    this.state = "off";
    this.attempt = 0;
    this.everOpened = false;
    this.stopped = true;
    this.retryTimer = null;
    this.pingTimer = null;
    this.openedAt = 0;
  }

  get isOpen() {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  start() {
    if (!this.url) {
      this.setState("off");
      return;
    }
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    if (this.socket) {
      this.socket.onclose = null;
      this.socket.close(1000, "signed out");
      this.socket = null;
    }
    this.setState("off");
  }

  /** Send a client frame; false when the socket is not open (the caller falls back to HTTP). */
  send(frame) {
    if (!this.isOpen) return false;
    this.socket.send(JSON.stringify(frame));
    return true;
  }

  /** Reconnect now (after the network came back, or the page became visible again). */
  retryNow() {
    if (this.stopped || this.isOpen || this.socket) return;
    clearTimeout(this.retryTimer);
    this.connect();
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.setState("connecting");
    const url = new URL(this.url);
    url.searchParams.set("token", this.token);
    let socket;
    try {
      socket = new WebSocket(url);
    } catch {
      this.scheduleRetry(false);
      return;
    }
    this.socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      this.openedAt = Date.now();
      const reconnected = this.everOpened;
      this.everOpened = true;
      this.setState("open");
      clearInterval(this.pingTimer);
      this.pingTimer = setInterval(() => this.send({ action: "ping" }), PING_MS);
      this.dispatchEvent(new CustomEvent("open", { detail: { reconnected } }));
    };
    socket.onmessage = (event) => {
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return; // not a frame of the contract
      }
      if (frame && typeof frame.type === "string") {
        this.dispatchEvent(new CustomEvent("frame", { detail: frame }));
      }
    };
    socket.onerror = () => {}; // onclose follows and decides
    socket.onclose = () => {
      clearInterval(this.pingTimer);
      this.socket = null;
      if (this.stopped) return;
      if (!opened) this.dispatchEvent(new CustomEvent("failed"));
      this.scheduleRetry(opened);
    };
  }

  scheduleRetry(wasOpen) {
    if (wasOpen && Date.now() - this.openedAt > STABLE_MS) this.attempt = 0;
    const ceiling = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** this.attempt);
    const delay = Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
    this.attempt += 1;
    this.setState("waiting", delay);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  setState(state, retryInMs) {
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, retryInMs } }));
  }
}
