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
  // the view (zoom, hidden series, slider, open details, scroll) survives the reloads of a live page
  const VIEW_KEY = "trainwell-view:" + location.pathname;
  let view = {};
  try { view = JSON.parse(sessionStorage.getItem(VIEW_KEY) || "{}") || {}; } catch (e) { view = {}; }
  view.zoom = view.zoom || {}; view.hidden = view.hidden || {}; view.log = view.log || {};
  function saveView() {
    view.scroll = window.scrollY;
    view.open = Array.from(document.querySelectorAll("details")).map((d) => d.open);
    try { sessionStorage.setItem(VIEW_KEY, JSON.stringify(view)); } catch (e) { /* storage off: no memory */ }
  }
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
            ctx.font = `${11 * dpr}px system-ui, sans-serif`;
            ctx.textAlign = "left";  // uPlot leaves the context as its last axis drew it
            ctx.textBaseline = "alphabetic";
            // inside the plot whatever the mark's position: right of the line, or left of it when it would
            // cross the right edge, never past the left edge; too long a label is shortened with an ellipsis.
            // One row per mark, so two marks at the same epoch never write over each other.
            const room = u.bbox.width - 8 * dpr;
            let text = m.label;
            while (text.length > 4 && ctx.measureText(text).width > room) text = text.slice(0, -2).trimEnd() + "\u2026";
            const w = ctx.measureText(text).width;
            const lo = u.bbox.left + 4 * dpr, hi = u.bbox.left + u.bbox.width - 4 * dpr - w;
            const want = x + 4 * dpr + w > u.bbox.left + u.bbox.width ? x - 4 * dpr - w : x + 4 * dpr;
            const left = Math.max(lo, Math.min(hi, want));
            const top = u.bbox.top + (12 + 14 * i) * dpr;
            m.box = [left / dpr, top / dpr - 11, w / dpr, 13];  // where it was drawn (CSS px), for the tests
            ctx.fillStyle = "rgba(255,255,255,0.8)";
            ctx.fillRect(left - 2 * dpr, top - 10 * dpr, w + 4 * dpr, 13 * dpr);
            ctx.fillStyle = m.color || "#57606a";
            ctx.fillText(text, left, top);
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
        stroke: s.band ? "transparent" : s.color || PALETTE[i % PALETTE.length],
        width: s.band ? 0 : s.width || 1.5,
        dash: s.dash ? [6, 4] : undefined,
        spanGaps: false,
        points: { show: s.band ? false : s.points !== undefined ? s.points : c.x.length <= 60 },
        value: (u, v) => yf(v),
      });
    });
    const xscale = { time: false };
    if (c.xlog) { xscale.distr = 3; xscale.log = 10; }
    if (c.xrev) xscale.dir = -1;
    const ylog = c.id in view.log ? view.log[c.id] : !!c.ylog;
    const yscale = ylog ? { distr: 3, log: 10 } : {};
    (view.hidden[c.id] || []).forEach((i) => { if (series[i]) series[i].show = false; });
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
      bands: (c.bands || []).map((b) => ({ series: b.series, fill: b.fill })),
      hooks: {
        setScale: [(u, key) => {
          if (key !== "x" || !el._ready) return;  // the first draw is not the user's zoom
          const full = u.scales.x.min <= c.x[0] && u.scales.x.max >= c.x[c.x.length - 1];
          if (full) delete view.zoom[c.id]; else view.zoom[c.id] = [u.scales.x.min, u.scales.x.max];
          saveView();
        }],
        setSeries: [(u) => {
          view.hidden[c.id] = u.series.map((s, i) => (i && !s.show ? i : 0)).filter((i) => i);
          saveView();
        }],
      },
    };
    if (ylog) opts.axes[1].label = c.ylabel.replace(/ \(log\)$/, "") + " (log)";
    else opts.axes[1].label = c.ylabel.replace(/ \(log\)$/, "");
    const data = [c.x].concat(c.series.map((s) => s.y));
    el._ready = false;
    const u = new uPlot(opts, data, el);
    el._u = u;
    el._marks = c.marks || [];
    // a band's edges are drawn as the band, not as legend entries: the legend lists one entry per curve
    const rows = el.querySelectorAll(".u-legend .u-series");
    c.series.forEach((s, i) => { if (s.band && rows[i + 1]) rows[i + 1].style.display = "none"; });
    const zoom = view.zoom[c.id];
    if (zoom) u.setScale("x", { min: zoom[0], max: zoom[1] });
    el._ready = true;
    if (c.logToggle) logToggle(c, el, ylog);
    el.dataset.rendered = "1";
  }

  // a log/linear switch for a chart whose values span decades: redraws the chart on the other scale
  function logToggle(c, el, ylog) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "log-toggle";
    button.textContent = ylog ? "linear scale" : "log scale";
    button.title = "values span decades: switch the y axis between log and linear";
    button.addEventListener("click", () => {
      view.log[c.id] = !ylog;
      saveView();
      el._u.destroy();
      el.innerHTML = "";
      lineChart(c);
    });
    el.appendChild(button);
    el.dataset.scale = ylog ? "log" : "linear";
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
    // a live page keeps the snapshot the user chose; "the latest" stays the latest as snapshots arrive
    const chosen = view.slider != null && view.slider < h.frames.length - 1 ? view.slider : h.frames.length - 1;
    slider.value = String(chosen);
    slider.addEventListener("input", () => {
      show(+slider.value);
      view.slider = +slider.value === h.frames.length - 1 ? null : +slider.value;
      saveView();
    });
    show(chosen);
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

  // a running fit's page: load the run's report-live.js again every poll_ms with a new <script> element (a
  // file:// page may not fetch a file but may run a script); a stamp that is not this page's means a newer
  // report.html: reload, keeping the view. The final page has no spec.live, so the updates stop with the run.
  function poll(live) {
    let current = null;
    window.trainwellLive = (d) => {
      if (d && d.stamp && d.stamp !== live.stamp) {
        saveView();
        document.body.dataset.live = "reloading";
        location.reload();
      }
    };
    const tick = () => {
      if (current) current.remove();
      current = document.createElement("script");
      current.src = live.file + "?t=" + Date.now();
      current.onerror = () => { document.body.dataset.live = "unreachable"; };
      document.body.appendChild(current);
    };
    document.body.dataset.live = "polling";
    setInterval(tick, live.poll_ms || 2000);
  }

  (spec.lines || []).forEach(lineChart);
  (spec.hists || []).forEach(histCharts);
  if (Array.isArray(view.open)) {
    document.querySelectorAll("details").forEach((d, i) => { if (view.open[i] != null) d.open = view.open[i]; });
  }
  if (view.scroll != null) window.scrollTo(0, view.scroll);
  window.addEventListener("scroll", () => { view.scroll = window.scrollY; }, { passive: true });
  window.addEventListener("pagehide", saveView);
  if (spec.live) poll(spec.live); else document.body.dataset.live = "off";
  document.body.dataset.charts = "ready";
})();
