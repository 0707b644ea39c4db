// ctpanel: a VPS's usage graphs (uPlot) from the JSON at [data-graphs]?range=...; redrawn every minute.
// Each chart has a text summary next to it (average and peak), so the numbers do not live in a canvas only.
(() => {
  const CHARTS = {
    cpu: { unit: "percent", lines: [["cpu", "average", "#1d57b3"], ["cpu_max", "peak", "#a4231b"]] },
    ram: { unit: "bytes", limit: "ram", lines: [["ram", "average", "#1d57b3"], ["ram_max", "peak", "#a4231b"]] },
    disk: { unit: "bytes", limit: "disk", lines: [["disk", "in use", "#176b30"]] },
    traffic: { unit: "bits", lines: [["rx", "received", "#1d57b3"], ["tx", "sent", "#8a5300"]] },
  };
  const REFRESH = 60000;

  function si(value, suffix) {
    if (value == null) return "—";
    const units = ["", "k", "M", "G", "T", "P"];
    let i = 0;
    while (Math.abs(value) >= 1000 && i < units.length - 1) { value /= 1000; i += 1; }
    const decimals = (i > 0 && value < 10) || (i === 0 && !Number.isInteger(value)) ? 1 : 0;
    return `${value.toFixed(decimals)} ${units[i]}${suffix}`;
  }
  function format(unit, value) {
    if (value == null) return "—";
    if (unit === "percent") return `${value.toFixed(1)} %`;
    return si(value, unit === "bytes" ? "B" : "bit/s");
  }
  function values(data, name) { return data[name].filter((v) => v != null); }
  function mean(list) { return list.reduce((a, b) => a + b, 0) / list.length; }
  // Average and peak of a chart with an average and a peak line; the average of each line otherwise.
  function summary(unit, data, lines) {
    if (!values(data, lines[0][0]).length) return "no data in this range";
    if (lines.length === 2 && lines[1][1] === "peak") {
      return `average ${format(unit, mean(values(data, lines[0][0])))}, ` +
        `peak ${format(unit, Math.max(...values(data, lines[1][0])))}`;
    }
    return lines.map(([name, label]) => `${label} ${format(unit, mean(values(data, name)))} on average`).join(", ");
  }

  // Short time labels: 24-hour clock within a day, the date beyond.
  function timeLabels(step) {
    const two = (n) => String(n).padStart(2, "0");
    return (u, ticks) => ticks.map((t) => {
      const d = new Date(t * 1000);
      return step < 3600 ? `${two(d.getHours())}:${two(d.getMinutes())}` : `${d.getMonth() + 1}/${d.getDate()}`;
    });
  }

  function draw(root, data) {
    root.charts = root.charts || {};
    for (const [key, chart] of Object.entries(CHARTS)) {
      const target = root.querySelector(`[data-graph="${key}"]`);
      const note = root.querySelector(`[data-summary="${key}"]`);
      if (!target) continue;
      const lines = [...chart.lines];
      const columns = [data.t, ...lines.map(([name]) => data[name])];
      // The limit is drawn only when the use comes near it; a line far above would flatten the use to nothing.
      const limit = chart.limit && data.limits[chart.limit];
      const peak = Math.max(0, ...values(data, lines[lines.length - 1][0]));
      if (limit && peak >= limit / 2) {
        lines.push(["limit", "limit", "#4f5b69"]);
        columns.push(data.t.map(() => limit));
      }
      note.textContent = summary(chart.unit, data, chart.lines) + (limit ? ` (limit ${format(chart.unit, limit)})` : "");
      if (root.charts[key]) root.charts[key].destroy();
      root.charts[key] = new uPlot({
        width: Math.max(target.clientWidth, 200), height: 160,
        scales: { x: { time: true, range: [data.since, data.until] }, y: { range: (u, min, max) => [0, Math.max(max, 1)] } },
        axes: [{ space: 55, values: timeLabels(data.range === "day" || data.range === "hour" ? 60 : 3600) },
          { size: 70, values: (u, ticks) => ticks.map((v) => format(chart.unit, v)) }],
        series: [{}, ...lines.map(([, label, stroke]) => ({
          label, stroke, width: 1.5, dash: label === "limit" ? [6, 4] : undefined,
          value: (u, v) => format(chart.unit, v),
        }))],
      }, columns, target);
    }
  }

  async function load(root) {
    const status = root.querySelector(".graphs-status");
    const range = root.querySelector("[data-range][aria-pressed=true]").dataset.range;
    try {
      const response = await fetch(`${root.dataset.graphs}?range=${range}`, { credentials: "same-origin" });
      if (!response.ok) throw new Error(`the panel answered ${response.status}`);
      const data = await response.json();
      draw(root, data);
      const points = data.t.length;
      status.textContent = points ? `${points} point${points === 1 ? "" : "s"} over the last ${range}.`
        : "No usage reported in this range yet (the node samples once a minute while the VPS runs).";
      root.dataset.loaded = range;
    } catch (error) {
      status.textContent = `The graphs could not be loaded: ${error.message}.`;
    }
  }

  function setUp(root) {
    root.querySelectorAll("[data-range]").forEach((button) => button.addEventListener("click", () => {
      root.querySelectorAll("[data-range]").forEach((b) => b.setAttribute("aria-pressed", String(b === button)));
      load(root);
    }));
    let resizing;
    window.addEventListener("resize", () => {
      clearTimeout(resizing);
      resizing = setTimeout(() => load(root), 200);
    });
    load(root);
    setInterval(() => { if (!document.hidden) load(root); }, REFRESH);
  }

  document.addEventListener("DOMContentLoaded", () => document.querySelectorAll("[data-graphs]").forEach(setUp));
})();
