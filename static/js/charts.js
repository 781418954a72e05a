/* CellSearch's charts (Plotly, served from static/vendor: no CDN). */
(function () {
  "use strict";

  var FONT = {family: "Inter, system-ui, -apple-system, Segoe UI, Roboto, sans-serif", size: 12, color: "#334155"};
  /* Plotly's toolbar (modebar) sits in the chart's top-right corner, over whatever is there: it
     shows only while the pointer is on the chart, and `layout` keeps the top band it needs free of
     titles (a title goes under it, left-aligned, so a long one on a narrow screen is not covered). */
  var CONFIG = {responsive: true, displaylogo: false, displayModeBar: "hover",
                modeBarButtonsToRemove: ["lasso2d", "select2d"]};
  var MODEBAR_BAND = 32;  // px: the toolbar's height and a little air
  var COLORS = ["#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];
  var DASHES = ["solid", "dash", "dot", "dashdot", "longdash", "longdashdot"];

  function layout(extra) {
    var base = {
      font: FONT, margin: {l: 64, r: 20, t: MODEBAR_BAND, b: 56}, paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "#ffffff", hovermode: "closest", legend: {orientation: "h", x: 0, y: -0.3, yanchor: "top"},
      xaxis: {gridcolor: "#eef2f7", zeroline: false}, yaxis: {gridcolor: "#eef2f7", zeroline: false}
    };
    if (extra && extra.title) {  // under the toolbar's band, then the plot
      base.title = {x: 0, xref: "paper", xanchor: "left", y: 1, yref: "container", yanchor: "top",
                    pad: {t: MODEBAR_BAND}, font: {size: 14}};
      base.margin.t = MODEBAR_BAND + 36;
    }
    for (var key in extra) {  // objects merge one level deep; plain values (showlegend) replace
      var value = extra[key];
      base[key] = value && typeof value === "object" && !Array.isArray(value) ? Object.assign({}, base[key] || {}, value) : value;
    }
    return base;
  }

  /* Whole-number ticks on a count axis (trials, epochs, models sampled) while the range is small. */
  function countTicks(max) { return max <= 20 ? {dtick: 1, tick0: 0} : {}; }

  function last(values) { return values.length ? values[values.length - 1] : 0; }  // arrays come sorted

  /* A y range around the rewards (and 0 when a trial failed) that stays sensible for one point. */
  function rewardRange(data) {
    var low = Infinity, high = -Infinity;
    for (var i = 0; i < data.reward.length; i++) {
      if (data.reward[i] < low) { low = data.reward[i]; }
      if (data.reward[i] > high) { high = data.reward[i]; }
    }
    if (data.failed.length) { low = Math.min(low, 0); high = Math.max(high, 0); }
    var pad = Math.max((high - low) * 0.08, 0.01);
    return [low - pad, high + pad];
  }

  function readJSON(id) {
    var node = document.getElementById(id);
    return node ? JSON.parse(node.textContent) : null;
  }

  function hexToRgba(hex, alpha) {
    var n = parseInt(hex.slice(1), 16);
    return "rgba(" + (n >> 16 & 255) + "," + (n >> 8 & 255) + "," + (n & 255) + "," + alpha + ")";
  }

  /* A search's reward against trial index with the best-so-far line; refetched whenever the
     live poller reports more finished trials (larger searches refetch less often). */
  function rewardChart(chartId, pollerId) {
    var chart = document.getElementById(chartId);
    var url = chart.dataset.url;
    var shownDone = -1, lastFetch = 0, fetching = false, points = 0;

    function draw(data) {
      points = data.index.length;
      var traces = [
        {x: data.index, y: data.reward, mode: "markers", type: points > 5000 ? "scattergl" : "scatter",
         name: "reward", marker: {color: "#1f77b4", size: points > 2000 ? 4 : 7, opacity: 0.75},
         hovertemplate: "trial %{x}<br>reward %{y:.2%}<extra></extra>"},
        {x: data.index, y: data.best, mode: "lines", type: "scatter", name: "best so far",
         line: {color: "#d62728", width: 2, shape: "hv"}, hovertemplate: "best after trial %{x}: %{y:.2%}<extra></extra>"}
      ];
      if (data.failed.length) {
        traces.push({x: data.failed, y: data.failed.map(function () { return 0; }), mode: "markers", type: "scatter",
                     name: "failed", marker: {color: "#94a3b8", symbol: "x", size: 7},
                     hovertemplate: "trial %{x} failed<extra></extra>"});
      }
      if (!points && !data.failed.length) {
        chart.innerHTML = '<p class="muted chart-placeholder">No trial has finished yet.</p>';
        return;
      }
      if (chart.querySelector(".chart-placeholder")) { chart.innerHTML = ""; }
      var lastIndex = Math.max(last(data.index), last(data.failed), (data.budget || 2) - 1);  // the whole budget
      Plotly.react(chart, traces, layout({
        xaxis: Object.assign({title: {text: "trial (in sampling order)"}, range: [-0.5, lastIndex + 0.5]},
                             countTicks(lastIndex)),
        yaxis: {title: {text: "reward"}, tickformat: ".1%", range: rewardRange(data)}
      }), CONFIG);
    }

    function refresh(done) {
      if (fetching || done === shownDone) { return; }
      var wait = Math.min(60000, 2000 + points / 2);  // ~50 s between refetches at 100,000 trials
      if (shownDone >= 0 && Date.now() - lastFetch < wait) { return; }
      fetching = true;
      lastFetch = Date.now();
      fetch(url, {credentials: "same-origin", headers: {"Accept": "application/json"}})
        .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
        .then(function (data) { shownDone = data.done; draw(data); })
        .catch(function () { /* keep the last chart; the next poll tries again */ })
        .then(function () { fetching = false; });
    }

    function poll() {
      var poller = document.getElementById(pollerId);
      refresh(poller ? parseInt(poller.dataset.done, 10) : -2);
    }
    poll();
    document.body.addEventListener("htmx:afterSettle", poll);
  }

  /* Loss and accuracy per epoch, redrawn when the live partial brings new epochs: each series is
     [column, label, colour, dash]. A trial's or transfer's train and validation curves by default
     (EPOCH_SERIES); a one-shot search's supernet passes SUPERNET_SERIES. */
  var EPOCH_SERIES = {
    loss: [["train_loss", "train loss", "#1f77b4"], ["val_loss", "validation loss", "#d62728", "dash"]],
    acc: [["train_acc", "train accuracy", "#1f77b4"], ["val_acc", "validation accuracy", "#d62728", "dash"]]
  };
  /* The supernet trains on a sampled cell's path per minibatch (train_*); its sampled cells are
     scored with the shared weights on validation batches: their mean, and the best told so far. */
  var SUPERNET_SERIES = {
    loss: [["train_loss", "train, sampled paths", "#1f77b4"]],
    acc: [["train_acc", "train, sampled paths", "#1f77b4"],
          ["sampled_val_acc", "sampled cells, mean", "#2ca02c", "dash"],
          ["best_val_acc", "best cell so far", "#d62728", "dot"]]
  };

  function epochCharts(dataId, lossId, accId, emptyId, series) {
    series = series || EPOCH_SERIES;
    var shown = -1;
    function draw() {
      var epochs = readJSON(dataId) || [];
      if (epochs.length === shown) { return; }
      shown = epochs.length;
      document.getElementById(emptyId).hidden = epochs.length > 0;
      if (!epochs.length) { return; }
      var x = epochs.map(function (e) { return e.epoch; });
      function line(spec) {
        return {x: x, y: epochs.map(function (e) { return e[spec[0]]; }), name: spec[1], mode: "lines+markers",
                line: {color: spec[2], dash: spec[3] || "solid"}};
      }
      Plotly.react(lossId, series.loss.map(line),
                   layout({title: {text: "Loss"}, xaxis: Object.assign({title: {text: "epoch"}}, countTicks(x.length)),
                           yaxis: {title: {text: "cross-entropy"}}}), CONFIG);
      Plotly.react(accId, series.acc.map(line),
                   layout({title: {text: "Accuracy"}, xaxis: Object.assign({title: {text: "epoch"}}, countTicks(x.length)),
                           yaxis: {title: {text: "accuracy"}, tickformat: ".1%"}}), CONFIG);
    }
    draw();
    document.body.addEventListener("htmx:afterSettle", draw);
  }

  /* NASNet Figure 6: per strategy one colour, per k one dash; steps, since a top-k mean changes
     only when a model is evaluated ("hv"). A strategy with several runs (seeds) gets the 95%
     interval of its mean as a band under the line; a k that some runs have too few unique models
     for says so in the legend (`shortfall`), and a comparison with too few seeds says it is not
     yet significant (`significance`) above the chart. */
  function compareChart(dataId, chartId) {
    var data = readJSON(dataId);
    var traces = [], longest = 0, low = Infinity, high = -Infinity;
    data.strategies.forEach(function (group, g) {
      var color = COLORS[g % COLORS.length];
      var several = group.runs.length > 1;
      data.top.forEach(function (k) {  // the y range holds the runs' values; a wide interval (few seeds) spills over
        (group.min[String(k)] || []).concat(group.max[String(k)] || []).forEach(function (v) {
          if (v !== null) { low = Math.min(low, v); high = Math.max(high, v); }
        });
      });
      data.top.forEach(function (k, ki) {
        var mean = group.mean[String(k)] || [];
        var x = data.x.slice(0, mean.length);  // numbers of models sampled (curves may be thinned)
        longest = Math.max(longest, x.length ? x[x.length - 1] : 0);
        var name = group.strategy + " · top " + k + (several ? " (mean of " + group.runs.length + ", 95% interval)" : "");
        var shortfall = (group.shortfall || {})[String(k)];
        var label = shortfall ? group.strategy + " · top " + k + ": " + shortfall : name;
        if (several) {
          traces.push({x: x, y: group.ci_high[String(k)], mode: "lines", line: {width: 0, shape: "hv"}, hoverinfo: "skip",
                       showlegend: false, legendgroup: name, connectgaps: false});
          traces.push({x: x, y: group.ci_low[String(k)], mode: "lines", line: {width: 0, shape: "hv"}, fill: "tonexty",
                       fillcolor: hexToRgba(color, 0.15), hoverinfo: "skip", showlegend: false, legendgroup: name});
        }
        var drawn = mean.some(function (v) { return v !== null; });
        traces.push({x: drawn ? x : [null], y: drawn ? mean : [null], mode: "lines", name: label, legendgroup: name,
                     line: {color: color, dash: DASHES[ki % DASHES.length], width: 2, shape: "hv"},
                     hovertemplate: name + "<br>%{x} sampled: %{y:.2%}<extra></extra>"});
      });
    });
    var annotations = data.significance ? [{text: data.significance, xref: "paper", yref: "paper", x: 0, y: 1.02,
                                            xanchor: "left", yanchor: "bottom", showarrow: false,
                                            font: {color: "#92400e"}}] : [];
    var chartLayout = layout({
      xaxis: Object.assign({title: {text: "number of models sampled"}, rangemode: "tozero"}, countTicks(longest)),
      yaxis: Object.assign({title: {text: "mean reward of the top-k unique models"}, tickformat: ".1%"},
                           low <= high ? {range: [low - Math.max((high - low) * 0.08, 0.01),
                                                  high + Math.max((high - low) * 0.08, 0.01)]} : {}),
      legend: {orientation: "h", x: 0, y: -0.18, yanchor: "top"}
    });
    chartLayout.annotations = annotations;  // a list: layout() merges objects only
    Plotly.react(chartId, traces, chartLayout, CONFIG);
  }

  /* Cost: the best reward so far against the GPU-hours spent (device-hours), one step line per
     search, from {searches: [{label, curve: {gpu_hours, best}}]} (selectors.search_cost_curve), or from
     the compare data's `cost`. */
  function costChart(dataId, chartId) {
    var data = readJSON(dataId);
    var chart = document.getElementById(chartId);
    var rows = ((data && (data.cost || data)) || {}).searches || [];  // the compare page's data holds it as .cost
    var traces = [];
    rows.forEach(function (row, i) {
      if (!row.curve || !row.curve.best.length) { return; }
      traces.push({x: row.curve.gpu_hours, y: row.curve.best, mode: "lines+markers", type: "scatter", name: row.label,
                   line: {color: COLORS[i % COLORS.length], width: 2, shape: "hv"}, marker: {size: 5},
                   hovertemplate: row.label + "<br>%{x:.3g} GPU-hours: best %{y:.2%}<extra></extra>"});
    });
    if (!traces.length) { return; }  // the page's placeholder stays
    chart.innerHTML = "";
    Plotly.newPlot(chart, traces, layout({
      xaxis: {title: {text: "GPU-hours spent (wall-clock hours × devices)"}, rangemode: "tozero"},
      yaxis: {title: {text: "best reward so far"}, tickformat: ".1%"},
      showlegend: traces.length > 1
    }), CONFIG);
  }

  /* The search page's cost panel is rendered by the server (templates/searches/_cost.html); while
     the search runs it is fetched again (the page itself, throttled as the reward chart is) when the
     live poller reports more trials done, and its chart redrawn. */
  function costPanel(panelId, pollerId) {
    var lastFetch = 0, fetching = false;
    function refresh() {
      var panel = document.getElementById(panelId), poller = document.getElementById(pollerId);
      if (!panel || !poller || fetching) { return; }
      if (poller.dataset.done === panel.dataset.done && poller.dataset.status === panel.dataset.status) { return; }
      if (Date.now() - lastFetch < 5000) { return; }
      fetching = true;
      lastFetch = Date.now();
      fetch(window.location.pathname, {credentials: "same-origin", headers: {"Accept": "text/html"}})
        .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.text(); })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html").getElementById(panelId);
          if (!fresh) { return; }
          panel.replaceWith(document.importNode(fresh, true));
          var chart = document.querySelector("#" + panelId + ' [data-chart="cost"]');
          if (chart) { costChart(chart.dataset.source, chart.id); }
        })
        .catch(function () { /* keep the panel; the next poll tries again */ })
        .then(function () { fetching = false; });
    }
    document.body.addEventListener("htmx:afterSettle", refresh);
  }

  var CellSearch = window.CellSearch = window.CellSearch || {};
  CellSearch.plotConfig = CONFIG;  // every page's charts share them (transfers.js too)
  CellSearch.plotLayout = layout;
  CellSearch.rewardChart = rewardChart;
  CellSearch.epochCharts = epochCharts;
  CellSearch.compareChart = compareChart;
  CellSearch.costChart = costChart;
  CellSearch.costPanel = costPanel;

  /* The page says which charts it has with data-* attributes (no inline scripts under the
     Content-Security-Policy); this file is loaded at the end of <body>, after them. */
  function each(kind, draw) {
    Array.prototype.forEach.call(document.querySelectorAll('[data-chart="' + kind + '"]'), draw);
  }
  each("reward", function (el) { rewardChart(el.id, el.dataset.poller); });
  each("compare", function (el) { compareChart(el.dataset.source, el.id); });
  each("cost", function (el) { costChart(el.dataset.source, el.id); });
  /* The compare page's results poll while a search runs (htmx swaps them in): redraw their charts. */
  document.body.addEventListener("htmx:afterSettle", function (event) {
    var swapped = event.target;
    if (!swapped || !swapped.querySelector || !swapped.querySelector('[data-chart="compare"]')) { return; }
    each("compare", function (el) { compareChart(el.dataset.source, el.id); });
    each("cost", function (el) { costChart(el.dataset.source, el.id); });
  });
  Array.prototype.forEach.call(document.querySelectorAll("[data-cost-panel]"), function (el) {
    costPanel(el.id, el.dataset.costPanel);
  });
  each("epochs", function (el) { epochCharts(el.dataset.source, el.dataset.loss, el.dataset.acc, el.dataset.empty); });
  each("supernet", function (el) {
    epochCharts(el.dataset.source, el.dataset.loss, el.dataset.acc, el.dataset.empty, SUPERNET_SERIES);
  });
})();
