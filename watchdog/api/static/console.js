// The console's live part, refreshed every few seconds from the server's own HTML
// (?fragment=live): no framework, no build step. Without JavaScript the page is the
// same, as of its load. The add-silence form sits outside the refreshed part, so what
// someone is typing is never replaced.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) { return; }
  var every = (parseInt(live.getAttribute("data-poll"), 10) || 5) * 1000;
  var busy = false;

  function refresh() {
    if (busy || document.hidden) { return; }
    busy = true;
    var url = new URL(window.location.href);
    url.searchParams.set("fragment", "live");
    url.searchParams.delete("done");
    fetch(url.toString(), { credentials: "same-origin", headers: { "Accept": "text/html" } })
      .then(function (response) {
        // Signed out (a new token): go where the server sent us, the sign-in page.
        if (response.redirected) { window.location.href = response.url; return ""; }
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.text();
      })
      .then(function (text) {
        if (!text) { return; }
        live.innerHTML = text;
        document.body.classList.remove("stale");
      })
      .catch(function () { document.body.classList.add("stale"); })
      .then(function () { busy = false; });
  }

  window.setInterval(refresh, every);
  document.addEventListener("visibilitychange", refresh);
})();
