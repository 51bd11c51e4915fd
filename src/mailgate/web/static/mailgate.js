// mailgate's small helpers, all progressive: every page works without them.
// - Copy buttons: <button data-copy="ID"> copies the value of the field with that id.
// - Times: <time datetime="…"> is shown in the viewer's time zone (the UTC value stays on hover).
"use strict";

document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  event.preventDefault();
  const field = document.getElementById(button.dataset.copy);
  if (!field) return;
  const label = button.textContent;
  try {
    await navigator.clipboard.writeText(field.value || field.textContent);
    button.textContent = "Copied";
  } catch (error) {
    field.select();
    button.textContent = "Press Ctrl+C";
  }
  setTimeout(() => { button.textContent = label; }, 2000);
});

document.addEventListener("DOMContentLoaded", () => {
  for (const button of document.querySelectorAll("button[data-copy]")) button.hidden = false;
  const format = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
  for (const time of document.querySelectorAll("time[datetime]")) {
    const moment = new Date(time.getAttribute("datetime"));
    if (!Number.isNaN(moment.getTime())) time.textContent = format.format(moment);
  }
});
