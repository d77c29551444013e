// Modal dialogs (<dialog>: focus is trapped and Escape closes them): a new direct chat, a
// new group, and the connection settings.

import { describeError } from "../api.js";
import { savedConfig, saveConfig } from "../config.js";
import { h, splitNumbers } from "../dom.js";

/**
 * Show a dialog with a form. `fields` are [id, label, input attributes]; `submit(values)`
 * resolves to close it, or throws to show the error and keep it open.
 */
export function formDialog({ title, fields, submitLabel, submit, note }) {
  const error = h("p", { class: "form-error", role: "alert", hidden: true });
  const inputs = fields.map(([id, label, attributes]) => {
    const tag = attributes.multiline ? "textarea" : "input";
    const { multiline, ...rest } = attributes;
    return [id, label, h(tag, { id, name: id, ...rest })];
  });
  const button = h("button", { type: "submit", class: "primary" }, submitLabel);
  const form = h(
    "form",
    { class: "stack", method: "dialog", novalidate: true },
    h("h2", { id: "dialog-title" }, title),
    note ? h("p", { class: "hint" }, note) : null,
    inputs.map(([id, label, input]) => [h("label", { for: id }, label), input]),
    error,
    h(
      "div",
      { class: "row end" },
      h("button", { type: "button", value: "cancel", onclick: () => dialog.close() }, "Cancel"),
      button,
    ),
  );
  const dialog = h("dialog", { class: "dialog", "aria-labelledby": "dialog-title" }, form);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = Object.fromEntries(inputs.map(([id, , input]) => [id, input.value.trim()]));
    button.disabled = true;
    error.hidden = true;
    try {
      await submit(values);
      dialog.close();
    } catch (failure) {
      error.textContent = describeError(failure);
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  });
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  inputs[0]?.[2].focus();
  return dialog;
}

export function newDirectChatDialog(api, onCreated) {
  return formDialog({
    title: "New chat",
    submitLabel: "Start chat",
    fields: [["new-chat-phone", "Their phone number", { type: "tel", autocomplete: "tel", required: true, placeholder: "+1 415 555 0102" }]],
    submit: async (values) => {
      if (!values["new-chat-phone"]) throw new Error("Type the phone number of the person to chat with.");
      onCreated(await api.createDirectChat(values["new-chat-phone"]));
    },
  });
}

export function newGroupDialog(api, onCreated) {
  return formDialog({
    title: "New group",
    submitLabel: "Create group",
    note: "A group has you and at least two other people.",
    fields: [
      ["new-group-name", "Group name", { required: true, maxlength: 400 }],
      ["new-group-members", "Members' phone numbers (one per line or separated by commas)", { multiline: true, rows: 4, required: true }],
    ],
    submit: async (values) => {
      const members = splitNumbers(values["new-group-members"]);
      if (!values["new-group-name"]) throw new Error("Give the group a name.");
      if (members.length < 2) throw new Error("List at least two phone numbers besides yours.");
      onCreated(await api.createGroupChat(values["new-group-name"], members));
    },
  });
}

export function settingsDialog(current) {
  const saved = savedConfig();
  return formDialog({
    title: "Connection settings",
    submitLabel: "Save and reload",
    note: `Leave a field empty to use the default. Now: HTTP API ${current.apiBase}; WebSocket API ${current.wsUrl || "none (no real-time updates)"}.`,
    fields: [
      ["settings-api", "HTTP API URL", { type: "url", value: saved.apiBase, placeholder: current.apiBase }],
      ["settings-ws", "WebSocket API URL", { type: "url", value: saved.wsUrl, placeholder: current.wsUrl || "ws://127.0.0.1:3001" }],
    ],
    submit: async (values) => {
      for (const value of [values["settings-api"], values["settings-ws"]]) {
        if (value && !URL.canParse(value)) throw new Error(`"${value}" is not a URL.`);
      }
      saveConfig({ apiBase: values["settings-api"], wsUrl: values["settings-ws"] });
      window.location.reload();
    },
  });
}
