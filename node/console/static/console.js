// The console's one script (served by the node; the CSP allows no other). It only helps: every
// page works without it. On the send page: find units by name in the recipient list.
"use strict";
(function () {
  var filter = document.getElementById("unit-filter");
  if (!filter) { return; }
  var rows = document.querySelectorAll("#unit-list tbody tr");
  filter.addEventListener("input", function () {
    var text = filter.value.trim();
    rows.forEach(function (row) {
      var checked = row.querySelector("input:checked") !== null;
      row.hidden = text !== "" && !checked && row.getAttribute("data-name").indexOf(text) < 0;
    });
  });
})();
