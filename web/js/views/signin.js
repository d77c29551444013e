// Sign in: a phone number, then the 6-digit code sent by SMS (AuthMode otp). When the stack
// needs no code (AuthMode phone: POST /v1/verifications answers 409 code_not_required) the
// number alone signs in.

import { describeError } from "../api.js";
import { focusSoon, h, replaceChildren } from "../dom.js";

export class SignInView {
  /**
   * @param {HTMLElement} root
   * @param {import("../api.js").Api} api
   * @param {(session: object) => void} onSignedIn
   * @param {() => void} openSettings
   */
  constructor(root, api, onSignedIn, openSettings) {
    this.root = root;
    this.api = api;
    this.onSignedIn = onSignedIn;
    this.openSettings = openSettings;
    this.phoneNumber = "";
  }

  show() {
    this.root.hidden = false;
    this.renderPhoneStep();
  }

  hide() {
    this.root.hidden = true;
    replaceChildren(this.root);
  }

  card(...children) {
    replaceChildren(
      this.root,
      h(
        "div",
        { class: "card signin-card" },
        h("h2", { id: "signin-title" }, "Sign in"),
        ...children,
        h(
          "p",
          { class: "hint" },
          h("button", { type: "button", class: "link-button", onclick: () => this.openSettings() }, "Connection settings"),
        ),
      ),
    );
  }

  errorBox() {
    return h("p", { class: "form-error", role: "alert", id: "signin-error", hidden: true });
  }

  showError(box, error) {
    box.textContent = typeof error === "string" ? error : describeError(error);
    box.hidden = false;
  }

  renderPhoneStep() {
    const input = h("input", {
      id: "signin-phone",
      name: "phoneNumber",
      type: "tel",
      autocomplete: "tel",
      required: true,
      placeholder: "+1 415 555 0101",
      value: this.phoneNumber,
      "aria-describedby": "signin-phone-hint signin-error",
    });
    const error = this.errorBox();
    const button = h("button", { type: "submit", class: "primary" }, "Continue");
    const form = h(
      "form",
      { class: "stack", novalidate: true },
      h("label", { for: "signin-phone" }, "Your phone number"),
      input,
      h("p", { class: "hint", id: "signin-phone-hint" }, "With its country code. We may send you a code by SMS."),
      error,
      button,
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const phoneNumber = input.value.trim();
      if (!phoneNumber) {
        this.showError(error, "Type your phone number.");
        input.focus();
        return;
      }
      button.disabled = true;
      error.hidden = true;
      try {
        const started = await this.api.startVerification(phoneNumber);
        this.phoneNumber = started.phoneNumber;
        this.renderCodeStep(started.expiresInSeconds);
      } catch (failure) {
        if (failure.code === "code_not_required") {
          await this.signIn(phoneNumber, null, error, button);
          return;
        }
        this.showError(error, failure);
        input.setAttribute("aria-invalid", "true");
        input.focus();
      } finally {
        button.disabled = false;
      }
    });
    this.card(form);
    focusSoon(input);
  }

  renderCodeStep(expiresInSeconds) {
    const input = h("input", {
      id: "signin-code",
      name: "code",
      type: "text",
      inputmode: "numeric",
      autocomplete: "one-time-code",
      pattern: "[0-9 -]*",
      maxlength: 9,
      required: true,
      "aria-describedby": "signin-code-hint signin-error",
    });
    const error = this.errorBox();
    const button = h("button", { type: "submit", class: "primary" }, "Sign in");
    const minutes = Math.round((expiresInSeconds || 300) / 60);
    const form = h(
      "form",
      { class: "stack", novalidate: true },
      h("label", { for: "signin-code" }, "Code"),
      input,
      h(
        "p",
        { class: "hint", id: "signin-code-hint" },
        `We sent a 6-digit code by SMS to ${this.phoneNumber}. It works for ${minutes} minutes.`,
      ),
      error,
      button,
      h(
        "div",
        { class: "row" },
        h("button", { type: "button", class: "link-button", onclick: () => this.renderPhoneStep() }, "Use another number"),
        h(
          "button",
          {
            type: "button",
            class: "link-button",
            onclick: async () => {
              error.hidden = true;
              try {
                await this.api.startVerification(this.phoneNumber);
                this.showError(error, "A new code is on its way.");
              } catch (failure) {
                this.showError(error, failure);
              }
            },
          },
          "Send a new code",
        ),
      ),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const code = input.value.replace(/[\s-]/g, "");
      if (!/^\d{6}$/.test(code)) {
        this.showError(error, "The code has 6 digits.");
        input.focus();
        return;
      }
      await this.signIn(this.phoneNumber, code, error, button);
      input.focus();
    });
    this.card(form);
    focusSoon(input);
  }

  async signIn(phoneNumber, code, error, button) {
    button.disabled = true;
    try {
      const session = await this.api.signIn(phoneNumber, code);
      this.onSignedIn(session);
    } catch (failure) {
      this.showError(error, failure);
    } finally {
      button.disabled = false;
    }
  }
}
