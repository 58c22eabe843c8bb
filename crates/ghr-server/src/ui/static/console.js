// ghr console: refresh each page's live section in place. Pages work without this script.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("[data-refresh]").forEach(function (section) {
    var every = Number(section.getAttribute("data-refresh")) || 5000;
    var timer = setInterval(function () {
      var url = new URL(window.location.href);
      url.searchParams.set("fragment", "1");
      fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (response) {
          if (response.redirected) {
            // The session ended: show the sign-in page.
            clearInterval(timer);
            window.location.reload();
            return null;
          }
          return response.ok ? response.text() : null;
        })
        .then(function (html) {
          if (html !== null) { section.innerHTML = html; }
        })
        .catch(function () { /* offline for a moment: try again next time */ });
    }, every);
  });
});
