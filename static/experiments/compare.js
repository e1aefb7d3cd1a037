// The compare page: draws what the server computed (downsampled curves with each point's
// min-max range, smoothing, bands); changing the metric or the smoothing asks the server again
// (?format=json) and keeps the URL in step, so a copied URL reproduces the view. Labels reach
// Plotly as data, never as HTML.
(function () {
  "use strict";

  const $ = (id) => document.getElementById(id);
  const plotly = window.Plotly;
  const controls = $("compare-controls");
  const PALETTE = ["#2f5bd3", "#d2452f", "#1f8a4c", "#8e44ad", "#d38b00", "#00838f", "#6d4c41", "#c2185b", "#546e7a", "#7cb342"];
  const color = (i) => PALETTE[i % PALETTE.length];
  const fade = (hex, alpha) => {
    const n = parseInt(hex.slice(1), 16);
    return "rgba(" + (n >> 16) + "," + ((n >> 8) & 255) + "," + (n & 255) + "," + alpha + ")";
  };
  // Plotly reads "<b>" and friends in names as markup: show user-chosen labels literally.
  const plain = (text) => String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

  function layout(title, metric) {
    return {
      title: { text: title, font: { size: 14 } },
      margin: { l: 50, r: 10, t: 35, b: 40 },
      xaxis: { title: { text: "frames" } },
      yaxis: { title: { text: metric } },
      legend: { orientation: "h", y: -0.2 },
      height: 380,
      hovermode: "closest",
    };
  }

  function runTraces(data) {
    const traces = [];
    data.runs.forEach((run, i) => {
      const name = plain(run.label);
      if (run.min) {
        // A downsampled run: each point's least-to-greatest range, as one faded area behind it.
        traces.push({ x: run.x.concat(run.x.slice().reverse()), y: run.max.concat(run.min.slice().reverse()),
                      mode: "lines", fill: "toself", fillcolor: fade(color(i), 0.15), line: { width: 0 },
                      name, showlegend: false, hoverinfo: "skip", legendgroup: "r" + run.id });
      }
      if (run.smoothed) {
        traces.push({ x: run.x, y: run.raw, mode: "lines", line: { color: fade(color(i), 0.25), width: 1 },
                      name, showlegend: false, hoverinfo: "skip", legendgroup: "r" + run.id });
        traces.push({ x: run.x, y: run.smoothed, mode: "lines", line: { color: color(i), width: 2 }, name, legendgroup: "r" + run.id });
      } else {
        traces.push({ x: run.x, y: run.raw, mode: "lines", line: { color: color(i), width: 1.5 }, name, legendgroup: "r" + run.id });
      }
    });
    return traces;
  }

  function experimentTraces(data) {
    const traces = [];
    data.experiments.forEach((experiment, i) => {
      const name = plain(experiment.label);
      const group = "e" + experiment.id;
      traces.push({ x: experiment.x, y: experiment.upper, mode: "lines", line: { width: 0 }, showlegend: false,
                    hoverinfo: "skip", legendgroup: group });
      traces.push({ x: experiment.x, y: experiment.lower, mode: "lines", line: { width: 0 }, fill: "tonexty",
                    fillcolor: fade(color(i), 0.2), showlegend: false, hoverinfo: "skip", legendgroup: group });
      traces.push({ x: experiment.x, y: experiment.mean, mode: "lines", line: { color: color(i), width: 2 },
                    name: name + " (" + experiment.runs.length + (experiment.runs.length === 1 ? " seed)" : " seeds)"), legendgroup: group });
    });
    return traces;
  }

  function draw(data) {
    const config = { displayModeBar: false, responsive: true };
    const smoothing = data.smoothing ? " · smoothed " + data.smoothing.toFixed(2) : "";
    plotly.react("chart-runs", runTraces(data), layout("Runs: " + data.metric + smoothing, data.metric), config);
    plotly.react("chart-experiments", experimentTraces(data),
                 layout("Experiments: mean ± 95% CI across seeds", data.metric), config);
    document.body.dataset.drawn = String(Number(document.body.dataset.drawn || 0) + 1);
  }

  function query(format) {
    const params = new URLSearchParams(new FormData(controls));
    for (const key of ["runs", "experiments"]) if (!params.get(key)) params.delete(key);
    if (params.get("smoothing") === "0") params.delete("smoothing");
    if (format) params.set("format", format);
    return "?" + params.toString();
  }

  let pending = null;
  function update() {
    window.history.replaceState(null, "", query(""));
    for (const format of ["json", "csv", "summary-csv"]) $("export-" + format).href = query(format);
    if (pending) pending.abort();
    pending = new AbortController();
    fetch(query("json"), { credentials: "same-origin", signal: pending.signal })
      .then((r) => (r.ok ? r.json() : Promise.reject(new Error("HTTP " + r.status))))
      .then(draw)
      .catch((e) => { if (e.name !== "AbortError") console.error("compare update failed:", e.message); });
  }

  let timer = null;
  $("smoothing").addEventListener("input", (e) => {
    $("smoothing-value").textContent = Number(e.target.value).toFixed(2);
    window.clearTimeout(timer);
    timer = window.setTimeout(update, 200);
  });
  controls.querySelector("[name=metric]").addEventListener("change", update);
  controls.addEventListener("submit", (e) => { e.preventDefault(); update(); });

  draw(JSON.parse($("comparison-data").textContent));
  performance.mark("compare-drawn");
})();
