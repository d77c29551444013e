// Campaigns (CONTRACT §5, §5a, operators only): the list, a new campaign (sendAt, ratePerSecond,
// quiet hours), a CSV upload to the presigned URL, live counts and the estimate (the campaign is
// polled while its page is open), and Pause / Resume / Cancel.

import { describeError } from "../api.js";
import { fullTime, h, replaceChildren } from "../dom.js";

const POLL_MS = 1500;
const PREVIEW_AFTER_MS = 300; // typing pauses this long before the template is previewed
const VARIABLE = /\{\{\s*([A-Za-z0-9_]+)\s*\}\}/g;
// Every recipient is in exactly one of these; they add up to the total (CONTRACT §5a).
const COUNTS = ["queued", "sent", "failed", "delivered", "skipped", "expired", "cancelled"];

export class CampaignsView {
  constructor(root, api) {
    this.root = root;
    this.api = api;
    this.timer = null;
    this.generation = 0; // a newer show() makes older polls stop
  }

  show(campaignId) {
    this.root.hidden = false;
    this.stopPolling();
    this.generation += 1;
    if (campaignId) this.renderDetail(campaignId);
    else this.renderList();
  }

  hide() {
    this.root.hidden = true;
    this.stopPolling();
    this.generation += 1;
    replaceChildren(this.root);
  }

  stopPolling() {
    clearTimeout(this.timer);
    this.timer = null;
  }

  poll(task, generation) {
    this.timer = setTimeout(async () => {
      if (generation !== this.generation) return;
      const again = await task().catch(() => true);
      if (again && generation === this.generation) this.poll(task, generation);
    }, POLL_MS);
  }

  // ---- list and create ------------------------------------------------------------------

  renderList() {
    const error = h("p", { class: "form-error", role: "alert", hidden: true });
    const tbody = h("tbody");
    const more = h("button", { type: "button", class: "load-more", hidden: true }, "Load more campaigns");
    const status = h("p", { class: "hint", role: "status" }, "Loading campaigns…");
    let cursor = null;
    const load = async () => {
      more.disabled = true;
      try {
        const page = await this.api.listCampaigns(cursor);
        for (const campaign of page.items) tbody.append(this.row(campaign));
        cursor = page.nextCursor;
        more.hidden = !cursor;
        status.textContent = tbody.children.length ? "" : "No campaigns yet.";
      } catch (failure) {
        status.textContent = "";
        error.textContent = describeError(failure);
        error.hidden = false;
      } finally {
        more.disabled = false;
      }
    };
    more.addEventListener("click", load);
    replaceChildren(
      this.root,
      h("h2", { id: "campaigns-title" }, "Campaigns"),
      this.createForm(),
      h("h3", {}, "All campaigns"),
      error,
      status,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "campaign-table" },
          h("thead", {}, h("tr", {}, ["Name", "Status", "Total", ...COUNTS.map(capital), "Created"].map((t) => h("th", { scope: "col" }, t)))),
          tbody,
        ),
      ),
      more,
    );
    load();
  }

  row(campaign) {
    const c = campaign.counts;
    return h(
      "tr",
      {},
      h("th", { scope: "row" }, h("a", { href: `#/campaigns/${encodeURIComponent(campaign.campaignId)}` }, campaign.name)),
      h("td", {}, campaign.status),
      h("td", {}, String(c.total)),
      COUNTS.map((name) => h("td", {}, String(c[name] ?? 0))),
      h("td", {}, fullTime(campaign.createdAt)),
    );
  }

  createForm() {
    const error = h("p", { class: "form-error", role: "alert", hidden: true });
    const name = h("input", { id: "campaign-name", name: "name", required: true, maxlength: 200 });
    const template = h("textarea", {
      id: "campaign-template",
      name: "template",
      rows: 3,
      required: true,
      maxlength: 1600,
      placeholder: "Hi {{first_name}}, your {{plan}} plan renews soon.",
      "aria-describedby": "campaign-template-hint",
    });
    const preview = h("p", { class: "hint campaign-preview", role: "status", "aria-live": "polite" });
    let previewTimer = null;
    let previewed = 0; // only the newest answer is shown
    template.addEventListener("input", () => {
      clearTimeout(previewTimer);
      previewTimer = setTimeout(async () => {
        const source = template.value.trim();
        const asked = ++previewed;
        if (!source) {
          preview.textContent = "";
          return;
        }
        // Each variable stands for itself: "Hi {{first_name}}" previews as "Hi first_name"
        const variables = {};
        for (const match of source.matchAll(VARIABLE)) variables[match[1]] = match[1];
        try {
          const result = await this.api.previewCampaignMessage(source, variables);
          if (asked !== previewed) return;
          const parts = result.segments === 1 ? "1 SMS part" : `${result.segments} SMS parts`;
          preview.textContent = `Preview: ${result.text} (${result.encoding} · ${parts} · ${result.characters} characters, each variable shown as its name)`;
        } catch (failure) {
          if (asked === previewed) preview.textContent = describeError(failure);
        }
      }, PREVIEW_AFTER_MS);
    });
    const senderId = h("input", { id: "campaign-sender", name: "senderId", maxlength: 20 });
    const sendAt = h("input", { id: "campaign-send-at", name: "sendAt", type: "datetime-local", "aria-describedby": "campaign-send-at-hint" });
    const rate = h("input", { id: "campaign-rate", name: "ratePerSecond", type: "number", min: 1, step: 1, inputmode: "numeric" });
    const quietStart = h("input", { id: "campaign-quiet-start", name: "quietStart", type: "time" });
    const quietEnd = h("input", { id: "campaign-quiet-end", name: "quietEnd", type: "time" });
    const button = h("button", { type: "submit", class: "primary" }, "Create campaign");
    const form = h(
      "form",
      { class: "card stack", novalidate: true },
      h("h3", {}, "New campaign"),
      h("label", { for: "campaign-name" }, "Name"),
      name,
      h("label", { for: "campaign-template" }, "Message template"),
      template,
      h(
        "p",
        { class: "hint", id: "campaign-template-hint" },
        "Variables are written {{name}}; the CSV you upload needs a column for each, plus iccid.",
      ),
      preview,
      h("label", { for: "campaign-sender" }, "Sender ID (optional)"),
      senderId,
      h("label", { for: "campaign-send-at" }, "Send at (optional)"),
      sendAt,
      h("p", { class: "hint", id: "campaign-send-at-hint" }, "Your local time; the campaign is scheduled and sends nothing before then."),
      h("label", { for: "campaign-rate" }, "At most SMS per second (optional)"),
      rate,
      h(
        "fieldset",
        { class: "quiet-hours" },
        h("legend", {}, "Quiet hours, in each recipient's local time (optional)"),
        h("label", { for: "campaign-quiet-start" }, "No SMS from"),
        quietStart,
        h("label", { for: "campaign-quiet-end" }, "until"),
        quietEnd,
      ),
      error,
      button,
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.hidden = true;
      if (!name.value.trim() || !template.value.trim()) {
        error.textContent = "A campaign needs a name and a message template.";
        error.hidden = false;
        return;
      }
      button.disabled = true;
      try {
        const fields = { name: name.value.trim(), template: template.value.trim() };
        if (senderId.value.trim()) fields.senderId = senderId.value.trim();
        if (sendAt.value) fields.sendAt = new Date(sendAt.value).toISOString(); // local time, sent as UTC
        if (rate.value) fields.ratePerSecond = Number(rate.value);
        if (quietStart.value || quietEnd.value) fields.quietHours = { start: quietStart.value, end: quietEnd.value };
        const campaign = await this.api.createCampaign(fields);
        window.location.hash = `#/campaigns/${encodeURIComponent(campaign.campaignId)}`;
      } catch (failure) {
        error.textContent = describeError(failure);
        error.hidden = false;
      } finally {
        button.disabled = false;
      }
    });
    return form;
  }

  // ---- one campaign -----------------------------------------------------------------------

  async renderDetail(campaignId) {
    const generation = this.generation;
    replaceChildren(this.root, h("p", { class: "hint", role: "status" }, "Loading the campaign…"));
    let campaign;
    try {
      campaign = await this.api.getCampaign(campaignId);
    } catch (failure) {
      replaceChildren(
        this.root,
        h("p", { class: "form-error", role: "alert" }, describeError(failure)),
        h("a", { href: "#/campaigns" }, "All campaigns"),
      );
      return;
    }
    if (generation !== this.generation) return;
    const counts = h("dl", { class: "counts", "aria-live": "polite" });
    const statusLine = h("p", { class: "campaign-status" });
    const progress = h("progress", { max: 1, value: 0, "aria-label": "Sent so far" });
    const lastError = h("p", { class: "form-error", hidden: true });
    const uploadResult = h("div", { class: "upload-result", "aria-live": "polite" });
    const estimate = h("p", { class: "hint campaign-estimate", "aria-live": "polite" });
    const controlError = h("p", { class: "form-error", role: "alert", hidden: true });
    const buttons = {
      pause: h("button", { type: "button" }, "Pause"),
      resume: h("button", { type: "button" }, "Resume"),
      cancel: h("button", { type: "button", class: "danger" }, "Cancel campaign"),
    };
    let render = () => {};
    for (const [action, button] of Object.entries(buttons)) {
      button.addEventListener("click", async () => {
        if (action === "cancel" && !window.confirm("Cancel this campaign for good? Every SMS not sent yet is dropped.")) return;
        controlError.hidden = true;
        button.disabled = true;
        try {
          render(await this.api.controlCampaign(campaignId, action));
        } catch (failure) {
          controlError.textContent = describeError(failure);
          controlError.hidden = false;
        } finally {
          button.disabled = false;
        }
      });
    }
    const controls = h("div", { class: "campaign-controls", role: "group", "aria-label": "Campaign control" }, Object.values(buttons), controlError);
    const showEstimate = async () => {
      const result = await this.api.campaignEstimate(campaignId).catch(() => null);
      if (!result) return;
      const parts = result.segments === 1 ? "1 SMS part" : `${result.segments} SMS parts`;
      estimate.textContent = `Estimate: ${result.messages} messages, ${parts} (GSM-7: ${result.encodings["GSM-7"]}, UCS-2: ${result.encodings["UCS-2"]})`;
    };
    render = (current) => {
      const c = current.counts;
      statusLine.textContent = `Status: ${current.status}`;
      const ended = current.status === "cancelled" || current.status === "completed";
      buttons.pause.hidden = ended || current.status === "paused";
      buttons.resume.hidden = current.status !== "paused";
      buttons.cancel.hidden = ended;
      replaceChildren(
        counts,
        ["total", ...COUNTS].map((name) => h("div", { class: `count ${name}` }, h("dt", {}, capital(name)), h("dd", { dataset: { count: name } }, String(c[name] ?? 0)))),
      );
      progress.max = Math.max(1, c.total);
      progress.value = c.total - c.queued;
      lastError.textContent = current.lastError ? `Last error: ${current.lastError}` : "";
      lastError.hidden = !current.lastError;
    };
    render(campaign);
    replaceChildren(
      this.root,
      h("p", {}, h("a", { href: "#/campaigns" }, "← All campaigns")),
      h("h2", { id: "campaigns-title" }, campaign.name),
      h("p", { class: "template" }, h("span", { class: "hint" }, "Template: "), campaign.template),
      campaign.variables.length ? h("p", { class: "hint" }, `Variables: ${campaign.variables.join(", ")}`) : null,
      h("p", { class: "hint" }, `Each SMS expires unsent ${validity(campaign.validFor)} after it is queued.`),
      campaign.sendAt ? h("p", { class: "hint" }, `Sends from ${fullTime(campaign.sendAt)}.`) : null,
      campaign.ratePerSecond ? h("p", { class: "hint" }, `At most ${campaign.ratePerSecond} SMS per second.`) : null,
      campaign.quietHours
        ? h("p", { class: "hint" }, `Quiet hours: no SMS from ${campaign.quietHours.start} to ${campaign.quietHours.end}, recipient's local time.`)
        : null,
      statusLine,
      controls,
      progress,
      counts,
      estimate,
      lastError,
      this.uploadForm(campaign, uploadResult),
      uploadResult,
    );
    // Live counts: poll while this page is open (and keep polling: a new upload restarts sending).
    showEstimate();
    this.poll(async () => {
      render(await this.api.getCampaign(campaignId));
      await showEstimate();
      return true;
    }, generation);
  }

  uploadForm(campaign, result) {
    const error = h("p", { class: "form-error", role: "alert", hidden: true });
    const file = h("input", { id: "campaign-file", type: "file", name: "file", accept: ".csv,text/csv", required: true, "aria-describedby": "campaign-file-hint" });
    const button = h("button", { type: "submit", class: "primary" }, "Upload");
    const columns = ["iccid", ...campaign.variables].join(", ");
    const form = h(
      "form",
      { class: "card stack", novalidate: true },
      h("h3", {}, "Upload recipients"),
      h("label", { for: "campaign-file" }, "CSV file"),
      file,
      h("p", { class: "hint", id: "campaign-file-hint" }, `UTF-8, a header row, columns: ${columns}.`),
      error,
      button,
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.hidden = true;
      const chosen = file.files[0];
      if (!chosen) {
        error.textContent = "Choose a CSV file first.";
        error.hidden = false;
        return;
      }
      button.disabled = true;
      const generation = this.generation;
      try {
        replaceChildren(result, h("p", { role: "status" }, `Uploading ${chosen.name}…`));
        const ticket = await this.api.startUpload(campaign.campaignId);
        await this.api.putFile(ticket, chosen);
        replaceChildren(result, h("p", { role: "status" }, `${chosen.name} uploaded; reading it…`));
        await this.followUpload(campaign.campaignId, ticket.uploadId, chosen.name, result, generation);
        form.reset();
      } catch (failure) {
        error.textContent = describeError(failure);
        error.hidden = false;
      } finally {
        button.disabled = false;
      }
    });
    return form;
  }

  /** Poll the upload until it is accepted or rejected, showing where it is. */
  async followUpload(campaignId, uploadId, fileName, result, generation) {
    for (;;) {
      if (generation !== this.generation) return;
      const upload = await this.api.getUpload(campaignId, uploadId);
      this.renderUpload(result, upload, fileName);
      if (upload.status === "accepted" || upload.status === "rejected") return;
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  renderUpload(result, upload, fileName) {
    const done = upload.status === "accepted" || upload.status === "rejected";
    const summary = h(
      "dl",
      { class: "counts upload-counts" },
      [
        ["accepted", "Accepted"],
        ["duplicates", "Duplicates"],
        ["invalidRows", "Invalid rows"],
        ["skipped", "Skipped (opted out)"],
      ].map(([key, label]) => h("div", { class: "count" }, h("dt", {}, label), h("dd", { dataset: { upload: key } }, String(upload[key] ?? 0)))),
    );
    replaceChildren(
      result,
      h("h3", {}, `Upload of ${fileName}: ${upload.status}${done ? "" : "…"}`),
      upload.error ? h("p", { class: "form-error", role: "alert" }, upload.error) : null,
      summary,
      upload.errors.length
        ? h(
            "div",
            { class: "table-wrap" },
            h(
              "table",
              { class: "row-errors" },
              h("caption", {}, upload.invalidRows > upload.errors.length ? `The first ${upload.errors.length} invalid rows` : "Invalid rows"),
              h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Row"), h("th", { scope: "col" }, "Problem"))),
              h("tbody", {}, upload.errors.map((e) => h("tr", {}, h("td", {}, String(e.row)), h("td", {}, e.message)))),
            ),
          )
        : null,
    );
  }
}

function capital(word) {
  return word.charAt(0).toUpperCase() + word.slice(1);
}

function validity(seconds) {
  if (seconds % 86400 === 0) return `${seconds / 86400} day${seconds === 86400 ? "" : "s"}`;
  if (seconds % 3600 === 0) return `${seconds / 3600} hour${seconds === 3600 ? "" : "s"}`;
  return `${seconds} seconds`;
}
