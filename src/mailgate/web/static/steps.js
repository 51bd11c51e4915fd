// Test connection, live: the steps appear one by one as the server takes them.
//
// Progressive: a <form method="post" data-steps> works without this script (the server answers
// with the finished list). With it, submitting the form POSTs the same fields with fetch and
// `Accept: application/x-ndjson`; the server (src/mailgate/web/steps.py) answers one JSON line per
// step, {"step", "ok", "detail"}, then {"done": true, "ok", "diagnosis"}.
//
// Where the steps go: data-steps="ID" names an <ol class="steps"> on the page; without a value,
// the list is made right after the form. Each step is written as the server renders it:
//   <li class="ok|failed"><span class="outcome">ok|failed</span><span class="step">NAME</span>
//   <span class="detail">DETAIL</span></li>
// (the words say the outcome, never the colour alone), followed by <p class="steps-summary">
// and, when a step failed, <p class="diagnosis">. Text from the server is set with textContent
// only: a detail that contains markup shows as text.
"use strict";

(() => {
  const NDJSON = "application/x-ndjson";

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function stepItem(step) {
    const outcome = step.ok ? "ok" : "failed";
    const item = element("li", outcome);
    item.append(
      element("span", "outcome", outcome),
      element("span", "step", step.step),
      element("span", "detail", step.detail),
    );
    return item;
  }

  // The list and what follows it (summary, diagnosis), emptied for a new run.
  function target(form) {
    let list = form.dataset.steps ? document.getElementById(form.dataset.steps) : null;
    if (!list) {
      list = form.nextElementSibling;
      if (!list || !list.matches("ol.steps")) {
        list = element("ol", "steps");
        form.after(list);
      }
    }
    list.setAttribute("aria-live", "polite");
    list.replaceChildren();
    let summary = list.nextElementSibling;
    if (!summary || !summary.matches("p.steps-summary")) {
      summary = element("p", "steps-summary");
      summary.setAttribute("role", "status");
      list.after(summary);
    }
    let diagnosis = summary.nextElementSibling;
    if (!diagnosis || !diagnosis.matches("p.diagnosis")) {
      diagnosis = element("p", "diagnosis");
      summary.after(diagnosis);
    }
    diagnosis.hidden = true;
    diagnosis.textContent = "";
    return { list, summary, diagnosis };
  }

  // The form's fields as a normal submission sends them (URL-encoded, the csrf field included),
  // plus the button that was pressed.
  function body(form, submitter) {
    const fields = new FormData(form);
    if (submitter && submitter.name) fields.append(submitter.name, submitter.value);
    return new URLSearchParams(fields);
  }

  // One JSON object per line, as the lines arrive (a line may span two chunks).
  async function* lines(response) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let pending = "";
    for (;;) {
      const { value, done } = await reader.read();
      pending += decoder.decode(value || new Uint8Array(), { stream: !done });
      let end;
      while ((end = pending.indexOf("\n")) >= 0) {
        const line = pending.slice(0, end).trim();
        pending = pending.slice(end + 1);
        if (line) yield JSON.parse(line);
      }
      if (done) break;
    }
    if (pending.trim()) yield JSON.parse(pending);
  }

  // The server answered with a page, not steps (a form error, the sign-in page): show it.
  async function showPage(response) {
    if (response.redirected) {
      window.location.assign(response.url);
      return;
    }
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    document.title = page.title;
    document.body.replaceWith(document.adoptNode(page.body));
    enhance(document);
  }

  async function run(form, submitter) {
    const { list, summary, diagnosis } = target(form);
    const buttons = form.querySelectorAll("button, input[type=submit]");
    for (const button of buttons) button.disabled = true;
    form.setAttribute("aria-busy", "true");
    summary.className = "steps-summary running";
    summary.textContent = "Testing…";
    let finished = null;
    let stopped = null; // the step that failed
    try {
      const response = await fetch(form.action, {
        method: "POST",
        body: body(form, submitter),
        headers: { Accept: NDJSON },
        credentials: "same-origin",
      });
      const type = response.headers.get("Content-Type") || "";
      if (!type.startsWith(NDJSON)) {
        await showPage(response);
        return;
      }
      for await (const line of lines(response)) {
        if (line.done) {
          finished = line;
          break;
        }
        list.append(stepItem(line));
        if (!line.ok) stopped = line.step;
      }
    } catch {
      finished = null; // the network, or a line cut short: said below
    } finally {
      form.removeAttribute("aria-busy");
      for (const button of buttons) button.disabled = false;
    }
    if (!finished) {
      summary.className = "steps-summary failed";
      summary.textContent =
        "The test stopped before it finished: the connection to mailgate was lost. Try again.";
      return;
    }
    summary.className = `steps-summary ${finished.ok ? "ok" : "failed"}`;
    summary.textContent = finished.ok
      ? "All steps passed."
      : stopped
        ? `Failed at the step “${stopped}”.`
        : "The test could not start.";
    if (finished.diagnosis) {
      diagnosis.textContent = finished.diagnosis;
      diagnosis.hidden = false;
    }
  }

  function enhance(root) {
    for (const form of root.querySelectorAll("form[data-steps]")) {
      if (form.dataset.stepsLive) continue;
      form.dataset.stepsLive = "on";
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        if (form.getAttribute("aria-busy") === "true") return;
        run(form, event.submitter);
      });
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", () => enhance(document));
  } else {
    enhance(document);
  }
})();
