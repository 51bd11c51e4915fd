// The incoming and outgoing mail server forms (<form data-server-form>), progressively: every
// form works without this script, and the server says the same things after a submit.
// - Authentication method: only the chosen method's fields show (a credential or a password).
// - Password on a Microsoft or Google host: the deprecation warning ([data-password-warning])
//   shows while the host is typed. The hosts' rule is the server's own, in data-oauth-only
//   (src/mailgate/mail/endpoints.py).
// - SMTP provider: choosing Microsoft or Gmail fills in the host, port and security from the
//   option's data-host, data-port and data-security.
// - SMTP credential: one that lacks the SMTP scope says why ([data-scope-problem]).
"use strict";

(() => {
  function chosenAuth(form) {
    const radio = form.querySelector("input[name=auth]:checked");
    return radio ? radio.value : "oauth2";
  }

  function oauthOnly(form, host) {
    const pattern = form.dataset.oauthOnly;
    if (!pattern || !host) return false;
    try {
      return new RegExp(pattern, "i").test(host.replace(/\.$/, ""));
    } catch {
      return false; // a rule JavaScript cannot read: the server still warns after a submit
    }
  }

  function update(form) {
    const auth = chosenAuth(form);
    for (const part of form.querySelectorAll("[data-auth]")) {
      part.hidden = part.dataset.auth !== auth;
    }
    const host = form.querySelector("input[name=host]");
    const warning = form.querySelector("[data-password-warning]");
    if (warning && host) {
      warning.hidden = !(auth === "password" && oauthOnly(form, host.value.trim()));
    }
    const credential = form.querySelector("select[name=credential]");
    const problem = form.querySelector("[data-scope-problem]");
    if (credential && problem) {
      const option = credential.selectedOptions[0];
      const why = option && option.dataset.problem;
      problem.textContent = why || "";
      problem.hidden = !why || auth !== "oauth2";
    }
  }

  function fillProvider(form, select) {
    const option = select.selectedOptions[0];
    if (!option || !option.dataset.host) return; // Custom: leave what is there
    const fields = { host: option.dataset.host, port: option.dataset.port };
    for (const [name, value] of Object.entries(fields)) {
      const input = form.querySelector(`input[name=${name}]`);
      if (input) input.value = value;
    }
    const security = form.querySelector("select[name=security]");
    if (security) security.value = option.dataset.security;
  }

  function enhance(form) {
    form.addEventListener("input", () => update(form));
    form.addEventListener("change", (event) => {
      if (event.target.matches("select[name=provider]")) fillProvider(form, event.target);
      update(form);
    });
    update(form);
  }

  function start() {
    for (const form of document.querySelectorAll("form[data-server-form]")) enhance(form);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
