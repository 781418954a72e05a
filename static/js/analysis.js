/* A search's analysis page: one Plotly figure per [data-analysis-figure] element, its data fetched
   as JSON from the element's data-url (no inline scripts under the Content-Security-Policy). */
(function () {
  "use strict";

  var FONT = {family: "Inter, system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12, color: "#334155"};
  var CONFIG = {responsive: true, displaylogo: false, modeBarButtonsToRemove: ["lasso2d", "select2d"]};
  var COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf",
                "#bcbd22", "#7f7f7f", "#393b79", "#ad494a", "#637939"];
  var GRID = {gridcolor: "#eef2f7", zeroline: false};

  function layout(extra) {
    return Object.assign({
      font: FONT, margin: {l: 64, r: 20, t: 30, b: 56}, paper_bgcolor: "rgba(0,0,0,0)", plot_bgcolor: "#ffffff",
      hovermode: "closest", legend: {orientation: "h", x: 0, y: -0.12, yanchor: "top"}
    }, extra);
  }

  function axis(extra) { return Object.assign({}, GRID, extra); }

  /* A line of text in place of the figure (the chart's height goes with it). */
  function message(element, text) {
    element.classList.remove("chart", "chart-tall");
    element.innerHTML = "";
    var p = document.createElement("p");
    p.className = "muted chart-placeholder";
    p.textContent = text;
    element.appendChild(p);
  }

  /* Validation accuracy (top) and loss (bottom) per epoch; the best trials in colour. */
  function curves(element, data) {
    if (!data.trials.length) { return message(element, "No trial has finished yet."); }
    var traces = [], best = 0;
    data.trials.forEach(function (trial) {
      var color = trial.best ? COLORS[best++ % COLORS.length] : "rgba(100,116,139,0.35)";
      var common = {x: trial.epoch, mode: "lines+markers", type: "scatter", legendgroup: "t" + trial.index,
                    line: {color: color, width: trial.best ? 2 : 1}, marker: {size: 4, color: color}};
      traces.push(Object.assign({y: trial.val_acc, name: "trial " + trial.index, showlegend: trial.best,
        hovertemplate: "trial " + trial.index + ", epoch %{x}: val acc %{y:.2%}<extra></extra>"}, common));
      traces.push(Object.assign({y: trial.val_loss, yaxis: "y2", name: "trial " + trial.index, showlegend: false,
        hovertemplate: "trial " + trial.index + ", epoch %{x}: val loss %{y:.3f}<extra></extra>"}, common));
    });
    Plotly.newPlot(element, traces, layout({
      title: {text: data.trials.length + " trials shown, of " + data.issued + " issued", font: {size: 12}},
      xaxis: axis({title: {text: "epoch"}, dtick: 1, anchor: "y2"}),
      yaxis: axis({title: {text: "val accuracy"}, tickformat: ".0%", domain: [0.55, 1]}),
      yaxis2: axis({title: {text: "val loss"}, domain: [0, 0.45]})
    }), CONFIG);
  }

  /* Reward against params (left) and mult-adds (right), the Pareto front as a step line. */
  function cost(element, data) {
    if (!data.params.front.cost.length && !data.mult_adds.front.cost.length) {
      return message(element, "No trial has finished with its params and mult-adds yet.");
    }
    var traces = [];
    [["params", "", "params"], ["mult_adds", "2", "mult-adds"]].forEach(function (spec) {
      var part = data[spec[0]], suffix = spec[1], label = spec[2];
      var many = part.points.cost.length > 2000;
      traces.push({x: part.points.cost, y: part.points.reward, text: part.points.index, xaxis: "x" + suffix,
                   yaxis: "y" + suffix, mode: "markers", type: many ? "scattergl" : "scatter", name: "trials",
                   legendgroup: "trials", showlegend: !suffix,
                   marker: {color: "#1f77b4", size: many ? 4 : 7, opacity: 0.6},
                   hovertemplate: "trial %{text}<br>" + label + " %{x:,}<br>reward %{y:.2%}<extra></extra>"});
      traces.push({x: part.front.cost, y: part.front.reward, text: part.front.index, xaxis: "x" + suffix,
                   yaxis: "y" + suffix, mode: "lines+markers", type: "scatter", name: "Pareto front",
                   legendgroup: "front", showlegend: !suffix, line: {color: "#d62728", shape: "hv", width: 2},
                   marker: {color: "#d62728", size: 8},
                   hovertemplate: "trial %{text} (front)<br>" + label + " %{x:,}<br>reward %{y:.2%}<extra></extra>"});
    });
    Plotly.newPlot(element, traces, layout({
      xaxis: axis({title: {text: "params"}, type: "log", domain: [0, 0.47]}),
      xaxis2: axis({title: {text: "mult-adds"}, type: "log", domain: [0.53, 1]}),
      yaxis: axis({title: {text: "reward"}, tickformat: ".1%"}),
      yaxis2: axis({tickformat: ".1%", anchor: "x2", matches: "y"})
    }), CONFIG);
  }

  /* Four panels: the Normal cell's ops and inputs (top), the Reduction cell's (bottom). */
  function ops(element, data) {
    if (!data.available) { return message(element, data.reason); }
    if (!data.start.length) { return message(element, "No trial has been issued yet."); }
    var traces = [], panels = [["normal", "ops", ""], ["normal", "inputs", "2"],
                                ["reduction", "ops", "3"], ["reduction", "inputs", "4"]];
    var names = {0: "input 0 (two back)", 1: "input 1 (one back)"};
    panels.forEach(function (panel) {
      var series = data.cells[panel[0]][panel[1]], suffix = panel[2], i = 0;
      Object.keys(series).forEach(function (choice) {
        var isOp = panel[1] === "ops";
        var name = isOp ? choice : (names[choice] || "block " + (choice - 2));
        traces.push({x: data.start, y: series[choice], xaxis: "x" + suffix, yaxis: "y" + suffix,
                     mode: "lines", type: "scatter", name: name, legendgroup: panel[1] + choice,
                     showlegend: panel[0] === "normal", line: {color: COLORS[i++ % COLORS.length], width: 1.5},
                     hovertemplate: panel[0] + " cell, trials %{x}+: " + name + " %{y:.1%}<extra></extra>"});
      });
    });
    var title = function (text) { return {title: {text: text, font: {size: 11}}}; };
    var ticks = {tickformat: ",d", dtick: data.window * Math.ceil(data.start.length / 5)};  // at most 5 labels
    Plotly.newPlot(element, traces, layout({
      grid: {rows: 2, columns: 2, pattern: "independent"}, legend: {orientation: "v", x: 1.02, y: 1},
      margin: {l: 64, r: 180, t: 30, b: 56},
      xaxis: axis(ticks), xaxis2: axis(ticks), xaxis3: axis(Object.assign(title("first trial of the window"), ticks)),
      xaxis4: axis(Object.assign(title("first trial of the window"), ticks)),
      yaxis: axis(Object.assign({tickformat: ".0%"}, title("Normal: ops"))),
      yaxis2: axis(Object.assign({tickformat: ".0%"}, title("Normal: inputs"))),
      yaxis3: axis(Object.assign({tickformat: ".0%"}, title("Reduction: ops"))),
      yaxis4: axis(Object.assign({tickformat: ".0%"}, title("Reduction: inputs")))
    }), CONFIG);
  }

  /* Entropy, loss, baseline and mean advantage against the update, one panel each. */
  function controller(element, data) {
    if (!data.available) { return message(element, data.reason); }
    if (!data.update.length) { return message(element, "The controller has not updated its policy yet."); }
    var series = [["entropy", "mean entropy"], ["loss", "loss"], ["baseline", "baseline"],
                  ["mean_advantage", "mean advantage"]];
    var extra = {grid: {rows: 4, columns: 1, pattern: "coupled", roworder: "top to bottom"}, showlegend: false,
                 xaxis: axis({title: {text: "policy update"}})};
    var traces = series.map(function (spec, i) {
      var suffix = i ? String(i + 1) : "";
      extra["yaxis" + suffix] = axis({title: {text: spec[1], font: {size: 11}}});
      return {x: data.update, y: data[spec[0]], customdata: data.trials_told, yaxis: "y" + suffix,
              mode: "lines", type: data.update.length > 5000 ? "scattergl" : "scatter", name: spec[1],
              line: {color: COLORS[i], width: 1.5},
              hovertemplate: "update %{x} (after %{customdata} trials): " + spec[1] + " %{y:.4g}<extra></extra>"};
    });
    Plotly.newPlot(element, traces, layout(extra), CONFIG);
  }

  var DRAW = {curves: curves, cost: cost, ops: ops, controller: controller};

  function load(element) {
    fetch(element.dataset.url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (response) {
        if (!response.ok) { throw new Error("HTTP " + response.status); }
        return response.json();
      })
      .then(function (data) {
        element.innerHTML = "";
        DRAW[element.dataset.analysisFigure](element, data);
        element.dataset.drawn = "true";
      })
      .catch(function (error) { message(element, "The chart could not be loaded: " + error.message); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("[data-analysis-figure]"), load);
  });
})();
