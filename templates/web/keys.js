// The desk's keyboard: j/k move through the queue (Enter opens), / searches, c claims the
// case, r goes to the reply box. Keys typed into a field are left alone; without this script
// every page works the same by mouse and Tab.
(function () {
  "use strict";
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr[data-href]"));
  var current = -1;
  function select(index) {
    if (!rows.length) { return; }
    if (current >= 0) { rows[current].classList.remove("selected"); }
    current = Math.max(0, Math.min(rows.length - 1, index));
    rows[current].classList.add("selected");
    rows[current].scrollIntoView({block: "nearest"});
  }
  function typing(target) {
    var name = target && target.tagName;
    return name === "INPUT" || name === "TEXTAREA" || name === "SELECT" || (target && target.isContentEditable);
  }
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) { return; }
    var search = document.querySelector("input[name=q]");
    var claim = document.querySelector("form[action$='/claim'] button:not([disabled])");
    var reply = document.getElementById("reply-text");
    if (event.key === "j") { select(current + 1); }
    else if (event.key === "k") { select(current - 1); }
    else if (event.key === "Enter" && current >= 0) { window.location.href = rows[current].getAttribute("data-href"); }
    else if (event.key === "/" && search) { search.focus(); search.select(); }
    else if (event.key === "c" && claim) { claim.click(); }
    else if (event.key === "r" && reply) { reply.focus(); reply.scrollIntoView({block: "center"}); }
    else { return; }
    event.preventDefault();
  });
}());
