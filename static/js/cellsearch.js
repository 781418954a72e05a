/* CellSearch's shared page behaviour, wired by data-* attributes (the Content-Security-Policy
   allows no inline scripts or on*= handlers). Listeners sit on the document, so markup that htmx
   swaps in later (the live status partials) works too.

   - <form data-confirm="Question?">: asks before submitting; "Cancel" keeps the form unsent.
   - <select data-autosubmit>: submits its form when the choice changes.
   - <input data-select-on-click>: selects its whole text on a click (a link to copy).
   - <button data-nav-toggle> in <nav data-nav>: opens and closes the navigation menu of narrow
     screens (the stylesheet folds the links only once this file has marked <html class="js">,
     so without JavaScript they stay listed). */
(function () {
  "use strict";

  document.documentElement.classList.add("js");

  // getAttribute, not form.dataset: a form's properties include its fields by name (`dataset`)
  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (form instanceof HTMLFormElement && form.hasAttribute("data-confirm") && !window.confirm(form.getAttribute("data-confirm"))) {
      event.preventDefault();
    }
  });

  document.addEventListener("change", function (event) {
    var field = event.target;
    if (field instanceof HTMLSelectElement && field.hasAttribute("data-autosubmit") && field.form) {
      field.form.submit();
    }
  });

  document.addEventListener("click", function (event) {
    var field = event.target;
    if (field instanceof HTMLInputElement && field.hasAttribute("data-select-on-click")) {
      field.select();
    }
    var toggle = field instanceof Element ? field.closest("[data-nav-toggle]") : null;
    var nav = toggle && toggle.closest("[data-nav]");
    if (nav) {
      toggle.setAttribute("aria-expanded", String(nav.classList.toggle("open")));
    }
  });
})();
