// The dashboard, live: every few seconds fetch the live part again (/dashboard/live, the same
// HTML the page was rendered with) and swap it in when it changed. Without this script the page
// is complete, and a reload updates it.
"use strict";

(() => {
  const EVERY_MS = 3000;
  const format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

  function localTimes(root) {
    for (const time of root.querySelectorAll("time[datetime]")) {
      const moment = new Date(time.getAttribute("datetime"));
      if (!Number.isNaN(moment.getTime())) time.textContent = format.format(moment);
    }
  }

  let lastHtml = null; // as the server sent it: the page's times are already made local

  async function refresh(container) {
    let response;
    try {
      response = await fetch(container.dataset.live, {
        credentials: "same-origin",
        headers: { Accept: "text/html" },
        redirect: "manual",
      });
    } catch (error) {
      return true; // the server is restarting, or the network is down: try again later
    }
    if (!response.ok) return response.status >= 500; // signed out (a redirect) or refused: stop
    const html = await response.text();
    if (html === lastHtml) return true;
    lastHtml = html;
    const fresh = new DOMParser().parseFromString(html, "text/html").querySelector("[data-live-part]");
    if (!fresh) return false;
    const current = container.querySelector("[data-live-part]");
    localTimes(fresh);
    if (current) current.replaceWith(document.adoptNode(fresh));
    else container.append(document.adoptNode(fresh));
    container.dataset.refreshed = String(Date.now());
    return true;
  }

  document.addEventListener("DOMContentLoaded", () => {
    const container = document.getElementById("live");
    if (!container || !container.dataset.live) return;
    const tick = async () => {
      if (!document.hidden && !(await refresh(container))) return;
      setTimeout(tick, EVERY_MS);
    };
    setTimeout(tick, EVERY_MS);
  });
})();
