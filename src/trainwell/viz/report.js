// trainwell report: turns the page's JSON chart specs into uPlot charts (zoom: drag; reset: double-click).
(function () {
  "use strict";
  const spec = JSON.parse(document.getElementById("trainwell-data").textContent);
  const nf = new Intl.NumberFormat("en-US");
  const FORMATS = {
    int: (v) => (v == null ? "-" : nf.format(Math.round(v))),
    pct: (v) => (v == null ? "-" : (100 * v).toFixed(2) + "%"),
    count: (v) => {
      if (v == null) return "-";
      for (const [d, s] of [[1e9, "G"], [1e6, "M"], [1e3, "k"]]) if (Math.abs(v) >= d) return +(v / d).toPrecision(3) + s;
      return String(+v.toPrecision(3));
    },
    density: (v) => (v == null ? "-" : +(100 * v).toPrecision(3) + "%"),
    num: (v) => {
      if (v == null) return "-";
      const a = Math.abs(v);
      return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(2) : String(+v.toPrecision(4));
    },
  };
  const PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                   "#bcbd22", "#17becf"];

  const INT_INCRS = [];
  for (let d = 1; d <= 1e9; d *= 10) INT_INCRS.push(d, 2 * d, 5 * d);

  function width(el) {
    return Math.max(300, Math.min(el.clientWidth || 520, 1060));
  }

  // vertical lines with a label (best epoch, stop reason)
  function marksPlugin(marks) {
    return {
      hooks: {
        draw: [(u) => {
          const ctx = u.ctx, dpr = window.devicePixelRatio || 1;
          ctx.save();
          marks.forEach((m, i) => {
            const x = u.valToPos(m.x, "x", true);
            if (!isFinite(x)) return;
            ctx.strokeStyle = m.color || "#57606a";
            ctx.lineWidth = dpr;
            ctx.setLineDash([5 * dpr, 4 * dpr]);
            ctx.beginPath();
            ctx.moveTo(x, u.bbox.top);
            ctx.lineTo(x, u.bbox.top + u.bbox.height);
            ctx.stroke();
            ctx.setLineDash([]);
            ctx.fillStyle = m.color || "#57606a";
            ctx.font = `${11 * dpr}px system-ui, sans-serif`;
            const text = m.label;
            const w = ctx.measureText(text).width;
            const left = x + 4 * dpr + w > u.bbox.left + u.bbox.width ? x - 4 * dpr - w : x + 4 * dpr;
            ctx.fillText(text, left, u.bbox.top + (12 + 13 * i) * dpr);
          });
          ctx.restore();
        }],
      },
    };
  }

  function lineChart(c) {
    const el = document.getElementById(c.id);
    if (!el) return;
    const xf = FORMATS[c.xfmt || "num"], yf = FORMATS[c.yfmt || "num"];
    const series = [{ label: c.xlabel, value: (u, v) => xf(v) }];
    c.series.forEach((s, i) => {
      series.push({
        label: s.label,
        stroke: s.color || PALETTE[i % PALETTE.length],
        width: s.width || 1.5,
        dash: s.dash ? [6, 4] : undefined,
        spanGaps: false,
        points: { show: s.points !== undefined ? s.points : c.x.length <= 60 },
        value: (u, v) => yf(v),
      });
    });
    const xscale = { time: false };
    if (c.xlog) { xscale.distr = 3; xscale.log = 10; }
    if (c.xrev) xscale.dir = -1;
    const yscale = c.ylog ? { distr: 3, log: 10 } : {};
    const xaxis = { label: c.xlabel, values: (u, splits) => splits.map(xf) };
    if (c.xsplits) xaxis.splits = () => c.xsplits;
    else if (c.xfmt === "int") xaxis.incrs = INT_INCRS; // whole epochs and steps only
    const opts = {
      title: c.title,
      width: width(el),
      height: c.height || 260,
      scales: { x: xscale, y: yscale },
      series: series,
      axes: [xaxis, { label: c.ylabel, values: (u, splits) => splits.map(yf), size: 60 }],
      legend: { live: true },
      cursor: { drag: { x: true, y: false } },
      plugins: c.marks && c.marks.length ? [marksPlugin(c.marks)] : [],
    };
    const data = [c.x].concat(c.series.map((s) => s.y));
    new uPlot(opts, data, el);
    el.dataset.rendered = "1";
  }

  function histCharts(h) {
    const root = document.getElementById(h.id);
    if (!root || !h.frames.length) return;
    const slider = document.getElementById(h.id + "-slider");
    const label = document.getElementById(h.id + "-label");
    const charts = [];
    h.layers.forEach((layer, i) => {
      const box = document.createElement("div");
      box.className = "hist";
      root.appendChild(box);
      const bars = uPlot.paths.bars({ size: [0.95, Infinity], align: 0 });
      const opts = {
        title: layer.title,
        width: 330,
        height: 170,
        legend: { show: false },
        scales: { x: { time: false }, y: { distr: 3, log: 10 } },
        series: [{}, { stroke: layer.color, fill: layer.color + "99", paths: bars, points: { show: false } }],
        axes: [{ label: layer.xlabel, values: (u, s) => s.map(FORMATS.num), size: 36 },
               { label: "count (log)", size: 48,
                 // many decades in 170 px: label every other one so the labels do not overlap
                 values: (u, s) => logLabels(s) }],
      };
      const u = new uPlot(opts, frameData(layer.frames[0]), box);
      charts.push([u, layer]);
      box.dataset.rendered = "1";
    });
    function show(i) {
      const f = h.frames[i];
      label.textContent = `snapshot ${i + 1} of ${h.frames.length}: step ${nf.format(f.step)}, epoch ${f.epoch}`;
      charts.forEach(([u, layer]) => u.setData(frameData(layer.frames[i])));
    }
    slider.max = String(h.frames.length - 1);
    slider.value = slider.max;
    slider.addEventListener("input", () => show(+slider.value));
    show(h.frames.length - 1);
    root.dataset.rendered = "1";
  }

  // labels of a log axis: decades only, every other one when there are more than four
  function logLabels(splits) {
    const decades = splits.filter((v) => v > 0 && Math.abs(Math.log10(v) - Math.round(Math.log10(v))) < 1e-9);
    const sparse = decades.length > 4;
    return splits.map((v) => {
      if (!(v > 0)) return "";
      const e = Math.log10(v), k = Math.round(e);
      return Math.abs(e - k) < 1e-9 && (!sparse || k % 2 === 0) ? FORMATS.count(v) : "";
    });
  }

  function frameData(f) {
    if (!f) return [[0, 1], [null, null]];
    const n = f.counts.length, w = (f.hi - f.lo) / n;
    const xs = [], ys = [];
    for (let i = 0; i < n; i++) {
      xs.push(f.lo + (i + 0.5) * w);
      ys.push(f.counts[i] > 0 ? f.counts[i] : null); // log scale: an empty bin is no bar
    }
    return [xs, ys];
  }

  (spec.lines || []).forEach(lineChart);
  (spec.hists || []).forEach(histCharts);
  document.body.dataset.charts = "ready";
})();
