// The console's one script (served by the node; the CSP allows no other). It only helps: every
// page works without it. On the send page: find units by name or by level in the recipient list,
// make every unit listed 主送 or 抄送 at once, and check the metadata as it is typed, and what is already
// in the form when the script starts (the node's own rules, POST send/check; nothing is kept or sent).
"use strict";
(function () {
  var filter = document.getElementById("unit-filter");
  var level = document.getElementById("level-filter");
  var rows = document.querySelectorAll("#unit-list tbody tr");
  function matches(row) {
    var text = filter ? filter.value.trim() : "";
    var wanted = level ? level.value : "*";  // "*": every level ("" is the level of units without one)
    return (text === "" || row.getAttribute("data-name").indexOf(text) >= 0)
      && (wanted === "*" || row.getAttribute("data-level") === wanted);
  }
  function narrow() {
    var narrowed = (filter && filter.value.trim() !== "") || (level && level.value !== "*");
    rows.forEach(function (row) {
      var checked = row.querySelector("input:checked") !== null;
      row.hidden = narrowed && !checked && !matches(row);
    });
  }
  function pickAll(column, other) {
    // Every unit the filters list becomes 主送 (or 抄送), and no longer the other.
    rows.forEach(function (row) {
      if (!matches(row)) { return; }
      row.querySelector("input[name=" + column + "]").checked = true;
      row.querySelector("input[name=" + other + "]").checked = false;
    });
    var form = document.getElementById("send-form");
    if (form) { form.dispatchEvent(new Event("input")); }  // the metadata check sees the new recipients
  }
  if (filter) { filter.addEventListener("input", narrow); }
  if (level) { level.addEventListener("change", narrow); }
  var pickTo = document.getElementById("pick-to");
  var pickCc = document.getElementById("pick-cc");
  if (pickTo) {
    pickTo.hidden = false;
    pickTo.addEventListener("click", function () { pickAll("to", "cc"); });
  }
  if (pickCc) {
    pickCc.hidden = false;
    pickCc.addEventListener("click", function () { pickAll("cc", "to"); });
  }

  var form = document.getElementById("send-form");
  var verdict = document.getElementById("meta-check");
  if (!form || !verdict) { return; }
  var timer = null;
  var asked = 0;
  function picked(name) {
    return Array.prototype.map.call(form.querySelectorAll("input[name=" + name + "]:checked"),
                                    function (box) { return box.value; }).join(",");
  }
  function check() {
    var data = new URLSearchParams();
    data.append("csrf", form.elements.csrf.value);
    ["kind", "title", "doc_number", "signers", "written_on", "urgency", "deadline", "printed_by",
     "printed_on"].forEach(function (name) { data.append(name, form.elements[name].value); });
    data.append("to", picked("to"));
    data.append("cc", picked("cc"));
    var mine = ++asked;
    fetch(form.getAttribute("action") + "/check", {method: "POST", body: data, credentials: "same-origin"})
      .then(function (r) { return r.json(); })
      .then(function (answer) {
        if (mine !== asked) { return; }  // an older answer arriving late
        verdict.className = answer.ok ? "good" : "problem";
        verdict.textContent = answer.ok ? "公文信息已检查，可以发送。"
          : answer.text + " " + answer.message + " (" + answer.code + ")";
      })
      .catch(function () { verdict.textContent = ""; });
  }
  form.addEventListener("input", function (event) {
    if (event.target.type === "file" || event.target.id === "unit-filter" || event.target.id === "level-filter") {
      return;
    }
    clearTimeout(timer);
    timer = setTimeout(check, 400);
  });
  // What is already in the form when the script starts fired no input event this script could hear:
  // typed while the script was still on its way (a slow line, a loaded node), put back by the browser
  // (back button, autofill), or the node's own page after a refused send. Check it now.
  var typed = ["title", "doc_number", "signers", "written_on", "deadline", "printed_by", "printed_on"]
    .some(function (name) { return form.elements[name].value.trim() !== ""; });
  if (typed || picked("to") !== "" || picked("cc") !== "") { check(); }
})();
