/* Transfers: the new-transfer form's presets, and a transfer's training speed chart. */
(function () {
  "use strict";
  var CellSearch = window.CellSearch = window.CellSearch || {};

  function readJSON(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  /* Choosing a preset fills every setting it has (a blank value where it sets none). */
  CellSearch.presetForm = function (formId, presetsId) {
    var form = document.getElementById(formId), presets = readJSON(presetsId) || {};
    var select = form && form.elements.preset;
    if (!select) { return; }
    select.addEventListener("change", function () {
      var values = presets[select.value];
      if (!values) { return; }
      Object.keys(values).forEach(function (name) {
        var input = form.elements[name], value = values[name];
        if (!input || name === "preset" || name === "data_root") { return; }
        if (value === null || value === undefined) { input.value = ""; }
        else if (typeof value === "boolean") { input.value = value ? "true" : "false"; }
        else if (typeof value === "object") { input.value = Object.keys(value).length ? JSON.stringify(value) : ""; }
        else { input.value = String(value); }
        input.dispatchEvent(new Event("change", {bubbles: true}));
      });
    });
  };

  /* Images per second per epoch, redrawn when the live partial brings new epochs. */
  CellSearch.speedChart = function (dataId, chartId) {
    var shown = -1;
    function draw() {
      var epochs = readJSON(dataId) || [];
      if (epochs.length === shown || !epochs.length || !window.Plotly) { return; }
      shown = epochs.length;
      Plotly.react(chartId, [{x: epochs.map(function (e) { return e.epoch; }),
                              y: epochs.map(function (e) { return e.images_per_second; }),
                              mode: "lines+markers", name: "images / s", line: {color: "#2ca02c"}}],
                   CellSearch.plotLayout({title: {text: "Training throughput"}, margin: {b: 40},
                                          xaxis: {title: {text: "epoch"}},
                                          yaxis: {title: {text: "images / s"}, rangemode: "tozero"}}),
                   CellSearch.plotConfig);
    }
    draw();
    document.body.addEventListener("htmx:afterSettle", draw);
  };

  /* Wired by data-* attributes (no inline scripts under the Content-Security-Policy); this file
     is loaded at the end of <body>, after charts.js where a page has both. */
  Array.prototype.forEach.call(document.querySelectorAll("form[data-presets]"), function (form) {
    // getAttribute: the form's `dataset` and `id` properties would be its fields of those names
    CellSearch.presetForm(form.getAttribute("id"), form.getAttribute("data-presets"));
  });
  Array.prototype.forEach.call(document.querySelectorAll('[data-chart="speed"]'), function (el) {
    CellSearch.speedChart(el.dataset.source, el.id);
  });
})();
