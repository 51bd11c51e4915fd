// The integration pages' helpers, all progressive: every form works without them.
//
// - Provider choice (form[data-provider-choice]): choosing a provider opens its form at once.
// - Pre-filled fields (form[data-preset-from]): when a field marked data-preset changes (tenant,
//   cloud, account type, login host, the IMAP / POP / SMTP boxes), the page asks the server for
//   the preset of the new choices (GET data-preset-from?…, the page the server renders for them)
//   and copies its endpoints, and its scope list unless the admin edited the list. The server
//   keeps the preset logic; this only carries values across.
// - Device code (the element with data-device-poll): while the sign-in waits, ask for its state
//   every few seconds and reload the page when it changes.
"use strict";

(() => {
  const words = (text) => text.split(/\s+/).filter(Boolean).join(" ");

  function presetQuery(form) {
    const query = new URLSearchParams();
    for (const field of form.querySelectorAll("[data-preset]")) {
      if ((field.type === "checkbox" || field.type === "radio") && !field.checked) continue;
      query.append(field.name, field.value);
    }
    return query;
  }

  async function refreshPreset(form) {
    const source = form.dataset.presetFrom;
    let page;
    try {
      const response = await fetch(`${source}?${presetQuery(form)}`, {
        headers: { Accept: "text/html" },
        credentials: "same-origin",
      });
      page = new DOMParser().parseFromString(await response.text(), "text/html");
    } catch {
      return; // the values stay as they are; saving applies the preset anyway
    }
    const problem = document.getElementById("preset-error");
    const said = page.getElementById("form-error");
    if (problem) {
      problem.textContent = said ? said.textContent : "";
      problem.hidden = !said;
    }
    for (const field of form.querySelectorAll("[data-preset-value]")) {
      const fresh = page.getElementById(field.id);
      if (fresh) field.value = fresh.value;
    }
    const scopes = document.getElementById("scopes");
    const shown = document.getElementById("preset_scopes");
    const freshScopes = page.getElementById("scopes");
    const freshShown = page.getElementById("preset_scopes");
    if (!scopes || !shown || !freshScopes || !freshShown) return;
    // The admin's own list stays; the preset's follows the choices.
    if (words(scopes.value) === words(shown.value)) scopes.value = freshScopes.value;
    shown.value = freshShown.value;
  }

  function watchPreset(form) {
    let pending = null;
    form.addEventListener("change", (event) => {
      if (!event.target.matches("[data-preset]")) return;
      clearTimeout(pending);
      pending = setTimeout(() => refreshPreset(form), 150);
    });
  }

  function watchDevice(box) {
    if (box.dataset.deviceState !== "waiting") return;
    const poll = async () => {
      try {
        const response = await fetch(box.dataset.devicePoll, {
          headers: { Accept: "application/json" },
          credentials: "same-origin",
        });
        const answer = await response.json();
        if (answer.state !== "waiting") {
          window.location.reload();
          return;
        }
      } catch {
        // a lost connection: try again at the next tick
      }
      setTimeout(poll, 3000);
    };
    setTimeout(poll, 3000);
  }

  document.addEventListener("DOMContentLoaded", () => {
    for (const form of document.querySelectorAll("form[data-provider-choice]")) {
      form.addEventListener("change", (event) => {
        if (event.target.name === "provider") form.requestSubmit();
      });
    }
    for (const form of document.querySelectorAll("form[data-preset-from]")) watchPreset(form);
    for (const box of document.querySelectorAll("[data-device-poll]")) watchDevice(box);
  });
})();
