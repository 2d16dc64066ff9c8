// The console's one script (served by the node; the CSP allows no other). It only helps: every
// page works without it. On the send page: find units by name in the recipient list, and check
// the metadata as it is typed (the node's own rules, POST send/check; nothing is kept or sent).
"use strict";
(function () {
  var filter = document.getElementById("unit-filter");
  if (filter) {
    var rows = document.querySelectorAll("#unit-list tbody tr");
    filter.addEventListener("input", function () {
      var text = filter.value.trim();
      rows.forEach(function (row) {
        var checked = row.querySelector("input:checked") !== null;
        row.hidden = text !== "" && !checked && row.getAttribute("data-name").indexOf(text) < 0;
      });
    });
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
    if (event.target.type === "file" || event.target.id === "unit-filter") { return; }
    clearTimeout(timer);
    timer = setTimeout(check, 400);
  });
})();
