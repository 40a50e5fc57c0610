/* engrain review page: keyboard shortcuts and small conveniences. Vendored with the package (no CDN); the
   Content-Security-Policy allows only this file, so there is no inline script or handler anywhere. */
(function () {
  "use strict";

  var page = document.body.getAttribute("data-page");
  var help = document.getElementById("help");

  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
  }

  function go(id) {
    var link = document.getElementById(id);
    if (link) { window.location.assign(link.href); }
  }

  function toggleHelp(show) {
    help.hidden = show === undefined ? !help.hidden : !show;
  }

  document.getElementById("help-button").addEventListener("click", function () { toggleHelp(); });
  help.addEventListener("click", function (event) { if (event.target === help) { toggleHelp(false); } });

  /* Queue: a cursor row (j/k), Enter opens it, x selects it, a approves the selection (or the cursor row). */
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr[data-row]"));
  var cursor = rows.length ? 0 : -1;

  function mark() {
    rows.forEach(function (row, i) { row.classList.toggle("cursor", i === cursor); });
    if (rows[cursor]) { rows[cursor].scrollIntoView({ block: "nearest" }); }
  }

  function pickedOrCursor() {
    var picked = document.querySelectorAll("input.pick:checked");
    if (!picked.length && rows[cursor]) { rows[cursor].querySelector("input.pick").checked = true; }
    return document.querySelectorAll("input.pick:checked").length;
  }

  function queueKey(key) {
    if (key === "j" && cursor < rows.length - 1) { cursor += 1; mark(); return true; }
    if (key === "k" && cursor > 0) { cursor -= 1; mark(); return true; }
    if ((key === "Enter" || key === "o") && rows[cursor]) { window.location.assign(rows[cursor].getAttribute("data-href")); return true; }
    if (key === "x" && rows[cursor]) { var box = rows[cursor].querySelector("input.pick"); box.checked = !box.checked; return true; }
    if (key === "a" && pickedOrCursor()) { document.getElementById("bulk-approve").click(); return true; }
    if (key === "r" && pickedOrCursor()) { document.getElementById("bulk-notes").focus(); return true; }
    return false;
  }

  rows.forEach(function (row, i) {
    row.addEventListener("click", function (event) {
      if (event.target.tagName !== "INPUT" && event.target.tagName !== "A") { cursor = i; mark(); }
    });
  });
  var all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll("input.pick").forEach(function (box) { box.checked = all.checked; });
    });
  }
  var bulkNotes = document.getElementById("bulk-notes");
  if (bulkNotes) {
    /* Enter in the reason box rejects the selection rather than approving it (the form's first button). */
    bulkNotes.addEventListener("keydown", function (event) {
      if (event.key === "Enter") { event.preventDefault(); document.getElementById("bulk-reject").click(); }
    });
  }

  /* One example: a approves, r opens the reason box, e edits, s skips, j/k step through the queue. */
  function openReject() {
    document.getElementById("reject-form").hidden = false;
    document.getElementById("reject-reason").focus();
  }
  var rejectOpen = document.getElementById("reject-open");
  if (rejectOpen) { rejectOpen.addEventListener("click", openReject); }

  function exampleKey(key) {
    if (key === "a") { document.getElementById("approve").click(); return true; }
    if (key === "r") { openReject(); return true; }
    if (key === "e") { go("edit-link"); return true; }
    if (key === "s" || key === "j") { go(key === "s" ? "skip" : "next-example"); return true; }
    if (key === "k") { go("prev-example"); return true; }
    return false;
  }

  document.addEventListener("keydown", function (event) {
    if (page === "edit" && event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      document.getElementById("save-edit").click();
      return;
    }
    if (event.key === "Escape") {
      toggleHelp(false);
      var reject = document.getElementById("reject-form");
      if (reject && typing(event.target)) { reject.hidden = true; event.target.blur(); }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) { return; }
    var handled = event.key === "?" ? (toggleHelp(), true)
      : page === "queue" ? queueKey(event.key)
      : page === "example" ? exampleKey(event.key) : false;
    if (handled) { event.preventDefault(); }
  });

  mark();
}());
