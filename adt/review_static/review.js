// The review page's keyboard and reviewer name (adt/review_page.py). Item data comes from the DOM and the
// JSON block #queue-data, never from text spliced into code; the page works without this script too.
"use strict";
(function () {
  const data = JSON.parse(document.getElementById("queue-data").textContent);
  const items = data.items.map((it) => document.getElementById("item-" + it.id)).filter(Boolean);
  const who = document.getElementById("reviewer");
  const KEY = "adt-review-reviewer";
  who.value = localStorage.getItem(KEY) || "";
  who.addEventListener("change", () => localStorage.setItem(KEY, who.value.trim()));
  let cur = -1;

  function select(i) {
    if (!items.length) return;
    if (cur >= 0 && items[cur]) items[cur].classList.remove("current");
    cur = Math.max(0, Math.min(items.length - 1, i));
    items[cur].classList.add("current");
    items[cur].focus({ preventScroll: true });
    items[cur].scrollIntoView({ block: "start" });
  }
  const fromHash = items.findIndex((el) => "#" + el.id === location.hash);
  select(fromHash >= 0 ? fromHash : 0);

  document.querySelectorAll('form[method="post"]').forEach((form) => {
    form.addEventListener("submit", (ev) => {
      const name = who.value.trim();
      if (!name) {  // asked once, then kept in this browser
        ev.preventDefault();
        who.classList.add("missing");
        who.focus();
        return;
      }
      localStorage.setItem(KEY, name);
      form.elements.reviewer.value = name;
      const i = items.indexOf(form.closest("article"));
      const next = items[i + 1] || items[i - 1];
      form.elements.next.value = next ? next.dataset.itemId : "";
    });
  });

  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const t = ev.target;
    if (t instanceof Element && t.matches("input, textarea, select")) {
      if (ev.key === "Escape") t.blur();
      return;
    }
    const art = items[cur];
    const find = (sel) => (art ? art.querySelector(sel) : null);
    switch (ev.key) {
      case "j": select(cur + 1); break;
      case "k": select(cur - 1); break;
      case "a": { const f = find('[data-testid="approve-form"]'); if (f) f.requestSubmit(); break; }
      case "r": { const r = find('[data-testid="reject-reason"]'); if (r) r.focus(); break; }
      case "e": {
        const d = find('[data-testid="edit"]');
        if (d) { d.open = true; d.querySelector("textarea").focus(); }
        break;
      }
      case "/": document.querySelector('[data-testid="tag-filter"]').focus(); break;
      default: return;
    }
    ev.preventDefault();
  });
})();
