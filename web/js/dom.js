// Small DOM and formatting helpers shared by the views. No framework: elements are built
// with h() and updated in place, so screen readers announce only what is new.

/**
 * h("button", {type: "button", class: "x", onclick: fn, dataset: {id: "1"}}, "Text", child...)
 * Attributes set to null, undefined or false are left out; true sets an empty attribute.
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(element.dataset, value);
    } else if (name === "class") {
      element.className = value;
    } else if (name in element && typeof value !== "string") {
      element[name] = value;
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
}

/** Replace every child of `element`. */
export function replaceChildren(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

export const $ = (selector, root = document) => root.querySelector(selector);

/** A random id for clientMessageId (crypto.randomUUID needs a secure context: not on plain http). */
export function newId() {
  if (globalThis.crypto?.randomUUID && globalThis.isSecureContext) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
const dateFormat = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short" });
const fullFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

/** "14:05" today, "3 Nov" otherwise. */
export function shortTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  const today = new Date();
  return date.toDateString() === today.toDateString() ? timeFormat.format(date) : dateFormat.format(date);
}

export function fullTime(iso) {
  return iso ? fullFormat.format(new Date(iso)) : "";
}

/** "last seen 14:05" / "last seen 3 Nov, 14:05". */
export function lastSeen(iso) {
  if (!iso) return "offline";
  const date = new Date(iso);
  const sameDay = date.toDateString() === new Date().toDateString();
  return `last seen ${sameDay ? "" : `${dateFormat.format(date)}, `}${timeFormat.format(date)}`;
}

/** Split a free-text list of phone numbers ("+1 415..., +1 415...", one per line...). */
export function splitNumbers(text) {
  return text
    .split(/[,;\n]+/)
    .map((part) => part.trim())
    .filter(Boolean);
}

/** Focus an element after the browser has laid it out (it may have just been shown). */
export function focusSoon(element) {
  if (element) requestAnimationFrame(() => element.focus());
}
