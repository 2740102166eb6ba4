// hpcx ui: fills the page from the dashboard's JSON routes and keeps it up to date by polling.
// Every value from a run is set as text (textContent) or, for plotly, with <, > and & written as entities:
// a name with HTML in it is shown, never run.
(function () {
  "use strict";
  var app = document.getElementById("app");
  var PAGE = app.getAttribute("data-page");
  var RUN = app.getAttribute("data-run") || "";
  var POLL_RUNS_MS = 3000, POLL_STATE_MS = 3000, POLL_SERIES_MS = 2000, POLL_TIMELINES_MS = 10000;
  var MAX_SHOWN_TASKS = 8;
  var PLOT_CONFIG = { displaylogo: false, responsive: true };

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }
  function link(href, text) { var a = el("a", text); a.href = href; return a; }
  function plotText(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }
  function num(v, digits) {
    if (v === null || v === undefined) return "-";
    if (typeof v !== "number") return String(v);
    if (Number.isInteger(v)) return String(v);
    return Number(v.toPrecision(digits || 4)).toString();
  }
  function duration(s) {
    if (s === null || s === undefined) return "-";
    s = Math.round(s);
    if (s < 120) return s + " s";
    if (s < 7200) return Math.round(s / 60) + " min";
    return (s / 3600).toFixed(1) + " h";
  }
  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", cache: "no-store" }).then(function (r) {
      if (!r.ok) throw new Error(url + ": HTTP " + r.status);
      return r.json();
    });
  }
  function stamp(error) {
    var p = document.getElementById("updated");
    p.textContent = error ? "could not refresh: " + error.message : "updated " + new Date().toLocaleTimeString();
    p.classList.toggle("bad", !!error);
  }
  function every(ms, fn) {
    var running = false;
    function tick() {
      if (running) return;
      running = true;
      Promise.resolve().then(fn).then(function () { stamp(null); }, stamp).then(function () { running = false; });
    }
    tick();
    return setInterval(tick, ms);
  }
  function metricText(m) {
    if (!m) return "-";
    var t = m.name + "=" + num(m.value);
    return m.task === undefined || m.task === null ? t : t + " (task " + m.task + ")";
  }
  function stateCell(state) { return el("td", state, "state-" + String(state).replace(/[^A-Z_]/g, "")); }
  function headRow(table, names, onSort) {
    var tr = el("tr");
    names.forEach(function (name, i) {
      var th = el("th", name);
      th.scope = "col";
      if (onSort) th.addEventListener("click", function () { onSort(i); });
      tr.appendChild(th);
    });
    table.tHead.replaceChildren(tr);
  }

  // ------------------------------------------------------------------ the runs list
  function runsPage() {
    var table = document.getElementById("runs"), form = document.getElementById("filters");
    var rows = [], sortCol = 6, sortUp = false;
    var COLS = ["run", "name", "kind", "state", "step", "metric", "created", "sweep", "job"];
    function value(r, col) {
      return [r.run_id, r.name, r.kind, r.state, r.step, r.metric ? r.metric.value : null, r.created, r.sweep,
        r.job_id][col];
    }
    headRow(table, COLS, function (col) {
      sortUp = sortCol === col ? !sortUp : true;
      sortCol = col;
      draw();
    });
    function kept(r) {
      var f = new FormData(form), state = f.get("state"), name = f.get("name"), sweep = f.get("sweep");
      var age = Number(f.get("age"));
      if (state === "ACTIVE" && r.finished) return false;
      if (state === "FINISHED" && !r.finished) return false;
      if (state && state !== "ACTIVE" && state !== "FINISHED" && r.state !== state) return false;
      if (name && String(r.name || "").toLowerCase().indexOf(name.toLowerCase()) < 0) return false;
      if (sweep && String(r.sweep || "").indexOf(sweep) !== 0) return false;
      if (age && (Date.now() - Date.parse(r.created)) / 1000 > age) return false;
      return true;
    }
    function compare(a, b) {
      var x = value(a, sortCol), y = value(b, sortCol);
      if (x === y) return 0;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * (sortUp ? 1 : -1);
    }
    function draw() {
      var shown = rows.filter(kept).sort(compare);
      table.tBodies[0].replaceChildren.apply(table.tBodies[0], shown.map(function (r) {
        var tr = el("tr");
        var first = el("td", null, "id");
        first.appendChild(link("/run/" +
          encodeURIComponent(r.run_id), r.run_id));
        tr.appendChild(first);
        tr.appendChild(el("td", r.name || "-"));
        tr.appendChild(el("td", r.kind || "-"));
        tr.appendChild(stateCell(r.state));
        tr.appendChild(el("td", r.step === null || r.step === undefined ? "-" : r.step, "num"));
        tr.appendChild(el("td", metricText(r.metric)));
        tr.appendChild(el("td", r.created ? new Date(r.created).toLocaleString() : "-"));
        tr.appendChild(el("td", r.sweep || "-", "id"));
        tr.appendChild(el("td", r.job_id || "-", "id"));
        tr.setAttribute("data-run", r.run_id);
        return tr;
      }));
      document.getElementById("count").textContent = shown.length + " of " + rows.length + " runs shown";
    }
    form.addEventListener("input", draw);
    every(POLL_RUNS_MS, function () {
      return getJSON("/api/runs").then(function (doc) {
        rows = doc.runs;
        document.getElementById("root").textContent = "runs root " + doc.root;
        draw();
      });
    });
  }

  // ------------------------------------------------------------------ a run
  function card(parent, label, value, cls) {
    var div = el("div", null, "card");
    div.appendChild(el("b", value, cls));
    div.appendChild(el("span", label));
    parent.appendChild(div);
  }
  function liveCards(parent, live, state) {
    card(parent, "state", state.state, "state-" + state.state);
    if (!live) return;
    card(parent, "step", live.total_steps ? live.step + " / " + live.total_steps : num(live.step));
    if (live.main_metric) card(parent, live.main_metric, num(live.main_value));
    card(parent, "steps per second", num(live.steps_per_s));
    if (!state.finished) {  // a finished job's ETA and heartbeat age mean nothing
      card(parent, "ETA", duration(live.eta_s));
      if (live.stalled) card(parent, live.stalled_reason || "heartbeat", "stalled " + duration(live.heartbeat_age_s), "stalled");
      else card(parent, "heartbeat age", duration(live.heartbeat_age_s));
    }
    card(parent, "attempt", num(live.attempt));
    if (live.resumed_from !== null && live.resumed_from !== undefined) card(parent, "resumed from", live.resumed_from);
  }
  function paramsText(t) {
    return Object.keys(t.params || {}).map(function (k) { return k + "=" + JSON.stringify(t.params[k]); }).join(", ");
  }
  function taskLabel(t) {
    var text = paramsText(t);
    return "task " + t.task + (text ? " (" + text + ")" : "");
  }

  function Curves(holder, isSweep) {
    this.holder = holder;
    this.isSweep = isSweep;
    this.cursor = {};
    this.data = {};   // file key -> metric -> {x: [], y: []}
    this.labels = {}; // file key -> legend text
    this.divs = {};   // metric -> plot div
    this.tasks = [];
    this.dirty = false;
  }
  Curves.prototype.add = function (key, metric, points) {
    var byMetric = this.data[key] || (this.data[key] = {});
    var s = byMetric[metric] || (byMetric[metric] = { x: [], y: [] });
    points.forEach(function (p) {
      var n = s.x.length, step = p[0];
      if (n === 0 || step > s.x[n - 1]) { s.x.push(step); s.y.push(p[1]); return; }
      var lo = 0, hi = n;  // a step logged again (a requeued attempt): the later value replaces it
      while (lo < hi) { var mid = (lo + hi) >> 1; if (s.x[mid] < step) lo = mid + 1; else hi = mid; }
      if (s.x[lo] === step) s.y[lo] = p[1]; else { s.x.splice(lo, 0, step); s.y.splice(lo, 0, p[1]); }
    });
    this.dirty = true;
  };
  Curves.prototype.poll = function () {
    var self = this;
    var url = "/api/run/" + encodeURIComponent(RUN) + "/series?cursor=" + encodeURIComponent(JSON.stringify(this.cursor));
    if (this.isSweep) url += "&tasks=" + this.tasks.join(",");
    return getJSON(url).then(function (doc) {
      doc.reset.forEach(function (key) { delete self.data[key]; });
      Object.keys(doc.cursor).forEach(function (key) { self.cursor[key] = doc.cursor[key]; });
      Object.keys(doc.series).forEach(function (key) {
        Object.keys(doc.series[key]).forEach(function (metric) { self.add(key, metric, doc.series[key][metric]); });
      });
      if (self.dirty || doc.reset.length) self.draw();
    });
  };
  Curves.prototype.draw = function () {
    var self = this, metrics = {};
    var keys = this.isSweep ? this.tasks.map(String) : [""];
    keys.forEach(function (key) { Object.keys(self.data[key] || {}).forEach(function (m) { metrics[m] = true; }); });
    Object.keys(metrics).forEach(function (metric) {
      var div = self.divs[metric];
      if (!div) {
        if (!Object.keys(self.divs).length) self.holder.replaceChildren();
        div = self.divs[metric] = el("div", null, "plot");
        div.setAttribute("data-metric", metric);
        self.holder.appendChild(div);
      }
      var traces = keys.filter(function (k) { return self.data[k] && self.data[k][metric]; }).map(function (k) {
        var s = self.data[k][metric];
        return { x: s.x.slice(), y: s.y.slice(), mode: "lines", type: "scatter",
          name: plotText(self.isSweep ? self.labels[k] || "task " + k : metric) };
      });
      div.setAttribute("data-points", traces.reduce(function (n, t) { return n + t.x.length; }, 0));
      Plotly.react(div, traces, { title: { text: plotText(metric), x: 0.02, xanchor: "left" }, margin: { t: 40, r: 10, b: 40, l: 60 },
        xaxis: { title: { text: "step" } }, showlegend: self.isSweep, legend: { orientation: "h", y: -0.25 } },
        PLOT_CONFIG);
    });
    this.dirty = false;
  };

  function tasksTable(curves, doc, redraw) {
    var table = document.getElementById("tasks");
    document.getElementById("tasks-section").hidden = false;
    headRow(table, ["shown", "task", "parameters", "state", "step", "metric"]);
    table.tBodies[0].replaceChildren.apply(table.tBodies[0], doc.tasks.map(function (t) {
      var tr = el("tr"), pick = el("td", null, "pick"), box = el("input");
      box.type = "checkbox";
      box.checked = curves.tasks.indexOf(t.task) >= 0;
      box.addEventListener("change", function () {
        curves.tasks = box.checked ? curves.tasks.concat([t.task]) : curves.tasks.filter(function (x) { return x !== t.task; });
        redraw();
      });
      pick.appendChild(box);
      tr.appendChild(pick);
      tr.appendChild(el("td", t.task, "num"));
      tr.appendChild(el("td", paramsText(t) || "-"));
      tr.appendChild(stateCell(t.state));
      tr.appendChild(el("td", t.live ? num(t.live.step) : "-", "num"));
      tr.appendChild(el("td", t.live && t.live.main_metric ? t.live.main_metric + "=" + num(t.live.main_value) : "-"));
      return tr;
    }));
  }

  function bestFirst(tasks, higher) {
    return tasks.filter(function (t) { return t.live && typeof t.live.main_value === "number"; }).sort(function (a, b) {
      return (a.live.main_value - b.live.main_value) * (higher ? -1 : 1);
    });
  }

  function reportSection(report) {
    if (!report) return;
    document.getElementById("report-section").hidden = false;
    document.getElementById("report-line").textContent = report.line || "";
    var cards = document.getElementById("report-cards");
    cards.replaceChildren();
    var s = report.summary || {};
    [["wall_s", "wall time (s)"], ["cpu_efficiency", "CPU efficiency"], ["mem_peak_mb", "memory peak (MB)"],
      ["energy_j", "energy (J)"], ["gpu_util_mean_pct", "GPU utilisation (%)"], ["exit_code", "exit code"]]
      .forEach(function (f) { if (s[f[0]] !== undefined && s[f[0]] !== null) card(cards, f[1], num(s[f[0]])); });
    var list = document.getElementById("advice");
    list.replaceChildren.apply(list, (report.advice || []).map(function (a) {
      return el("li", typeof a === "string" ? a : (a.text || a.message || a.advice || JSON.stringify(a)));
    }));
    var where = document.getElementById("report-link");
    where.replaceChildren();
    if (report.html) where.appendChild(link("/report/" + encodeURIComponent(RUN), "the full report"));
  }

  function runPage() {
    var curves = null;
    function state() {
      return getJSON("/api/run/" + encodeURIComponent(RUN)).then(function (doc) {
        document.getElementById("title").textContent = (doc.name || doc.run_id) + "  " + doc.run_id;
        document.getElementById("headline").textContent = [doc.kind, doc.job_id ? "job " + doc.job_id : null,
          doc.command && doc.command.length ? doc.command.join(" ") : null].filter(Boolean).join(" · ");
        var cards = document.getElementById("cards");
        cards.replaceChildren();
        liveCards(cards, doc.state.live, doc.state);
        var note = document.getElementById("notice");
        note.hidden = !doc.stopped;
        if (doc.stopped) note.textContent = "stopped on request by " + (doc.stopped.requested_by || "?") +
          " at step " + num(doc.stopped.step);
        if (!curves) {
          curves = new Curves(document.getElementById("curves"), doc.sweep);
          if (doc.sweep) {
            curves.tasks = bestFirst(doc.tasks, false).concat(doc.tasks).map(function (t) { return t.task; })
              .filter(function (t, i, all) { return all.indexOf(t) === i; }).slice(0, MAX_SHOWN_TASKS);
          }
          every(POLL_SERIES_MS, function () { return curves.poll(); });
          every(POLL_TIMELINES_MS, function () {  // a sweep's: those of its first shown task
            return timelines(curves.isSweep ? (curves.tasks.length ? curves.tasks[0] : 0) : null);
          });
        }
        if (doc.sweep) {
          doc.tasks.forEach(function (t) { curves.labels[String(t.task)] = taskLabel(t); });
          tasksTable(curves, doc, function () { curves.draw(); curves.poll(); });
          var to = document.getElementById("sweep-link");
          to.replaceChildren(link("/sweep/" + encodeURIComponent(RUN), "parameters against the metric"));
        }
        if (doc.state.study) {
          var studyNote = document.getElementById("notice");
          studyNote.hidden = false;
          studyNote.replaceChildren(link("/study/" + encodeURIComponent(RUN), "this run is a tuning study: its trials"));
        }
        reportSection(doc.report);
      });
    }
    every(POLL_STATE_MS, state);

  }

  function linePlot(holder, id, title, traces, ytitle) {
    var div = document.getElementById(id);
    if (!div) {
      if (!holder.querySelector(".plot")) holder.replaceChildren();
      div = el("div", null, "plot");
      div.id = id;
      holder.appendChild(div);
    }
    Plotly.react(div, traces, { title: { text: plotText(title), x: 0.02, xanchor: "left" }, margin: { t: 40, r: 10, b: 40, l: 60 },
      xaxis: { title: { text: "seconds" } }, yaxis: { title: { text: ytitle } }, legend: { orientation: "h", y: -0.25 } },
      PLOT_CONFIG);
  }
  function timelines(task) {
    var url = "/api/run/" + encodeURIComponent(RUN) + "/timelines" + (task === null ? "" : "?task=" + task);
    return getJSON(url).then(function (doc) {
      var holder = document.getElementById("timelines");
      document.getElementById("timelines-of").textContent = task === null ? "" : "of task " + task;
      function trace(t, y, name) { return { x: t, y: y, mode: "lines", type: "scatter", name: plotText(name) }; }
      doc.nodes.forEach(function (n, i) {
        var tl = n.timeline, name = plotText(n.node);
        linePlot(holder, "node-mem-" + i, "memory used on " + n.node, [trace(tl.t, tl.mem_used_mb, n.node)], "MB");
        linePlot(holder, "node-net-" + i, "network on " + n.node,
          [trace(tl.t, tl.net_rx_mb_s, "receive"), trace(tl.t, tl.net_tx_mb_s, "send")], "MB/s");
        var power = [];
        if (tl.cpu_power_t.length) power.push(trace(tl.cpu_power_t, tl.cpu_power_w, "CPU package"));
        tl.gpus.forEach(function (g) { power.push(trace(g.t, g.power_w, "GPU " + g.index)); });
        if (power.length) linePlot(holder, "node-power-" + i, "power on " + n.node, power, "W");
        if (tl.gpus.length) linePlot(holder, "node-gpu-" + i, "GPU utilisation on " + n.node,
          tl.gpus.map(function (g) { return trace(g.t, g.util_pct, "GPU " + g.index); }), "%");
        return name;
      });
      if (doc.ranks.length) {
        linePlot(holder, "rank-mem", "memory of each rank", doc.ranks.map(function (r) {
          return trace(r.t, r.rss_mb, "rank " + r.rank); }), "MB");
        linePlot(holder, "rank-cpu", "CPU of each rank", doc.ranks.map(function (r) {
          return trace(r.t, r.cpu_cores, "rank " + r.rank); }), "cores");
      }
    });
  }

  // ------------------------------------------------------------------ a sweep
  function sweepPage() {
    every(POLL_STATE_MS, function () {
      return getJSON("/api/sweep/" + encodeURIComponent(RUN)).then(function (doc) {
        document.getElementById("title").textContent = (doc.name || doc.run_id) + "  " + doc.run_id;
        var counts = doc.state.tasks || {};
        document.getElementById("headline").textContent = "sweep of " + (doc.tasks || []).length + " tasks · " +
          Object.keys(counts).map(function (k) { return counts[k] + " " + k; }).join(", ");
        var cards = document.getElementById("cards");
        cards.replaceChildren();
        card(cards, "state", doc.state.state, "state-" + doc.state.state);
        card(cards, "metric", doc.metric ? doc.metric + (doc.higher_is_better ? " (higher is better)" : " (lower is better)") : "-");
        var ranked = bestFirst(doc.tasks || [], doc.higher_is_better);
        bestTable(ranked.slice(0, 10), doc);
        scatter(doc, ranked);
      });
    });
  }
  function bestTable(best, doc) {
    var table = document.getElementById("best");
    headRow(table, ["task", doc.metric || "metric", "step", "state"].concat(doc.params));
    table.tBodies[0].replaceChildren.apply(table.tBodies[0], best.map(function (t) {
      var tr = el("tr"), first = el("td", null, "num");
      first.appendChild(link("/run/" + encodeURIComponent(RUN), t.task));
      tr.appendChild(first);
      tr.appendChild(el("td", num(t.live.main_value), "num"));
      tr.appendChild(el("td", num(t.live.step), "num"));
      tr.appendChild(stateCell(t.state));
      doc.params.forEach(function (p) { tr.appendChild(el("td", JSON.stringify((t.params || {})[p]))); });
      return tr;
    }));
  }
  function scatter(doc, ranked) {
    var holder = document.getElementById("scatter");
    if (!ranked.length) return;
    doc.params.forEach(function (p, i) {
      var values = ranked.map(function (t) { return (t.params || {})[p]; });
      var numeric = values.every(function (v) { return typeof v === "number"; });
      var xs = values.map(function (v) { return numeric ? v : plotText(typeof v === "string" ? v : JSON.stringify(v)); });
      var trace = { x: xs, y: ranked.map(function (t) { return t.live.main_value; }), mode: "markers", type: "scatter",
        text: ranked.map(function (t) { return "task " + t.task; }), name: plotText(doc.metric) };
      var div = document.getElementById("scatter-" + i);
      if (!div) {
        if (!holder.querySelector(".plot")) holder.replaceChildren();
        div = el("div", null, "plot");
        div.id = "scatter-" + i;
        div.setAttribute("data-param", p);
        holder.appendChild(div);
      }
      Plotly.react(div, [trace], { title: { text: plotText(p), x: 0.02, xanchor: "left" }, margin: { t: 40, r: 10, b: 40, l: 60 },
        xaxis: { title: { text: plotText(p) }, type: numeric ? "-" : "category" }, yaxis: { title: { text: plotText(doc.metric) } } }, PLOT_CONFIG);
    });
  }

  // ------------------------------------------------------------------ a tuning study
  function plotIn(holder, id, traces, layout) {
    var div = document.getElementById(id);
    if (!div) {
      if (!holder.querySelector(".plot")) holder.replaceChildren();
      div = el("div", null, "plot");
      div.id = id;
      holder.appendChild(div);
    }
    layout.margin = { t: 40, r: 10, b: 45, l: 60 };
    Plotly.react(div, traces, layout, PLOT_CONFIG);
    return div;
  }
  function studyPage() {
    every(POLL_STATE_MS, function () {
      return getJSON("/api/study/" + encodeURIComponent(RUN)).then(function (doc) {
        var first = doc.objectives[0] || { metric: "value", direction: "minimize" };
        document.getElementById("title").textContent = (doc.name || doc.run_id) + "  " + doc.run_id;
        document.getElementById("headline").textContent = doc.summary ? studyLine(doc.summary) : "";
        var holder = document.getElementById("study-plots");
        var ended = doc.trials.filter(function (t) { return t.state !== "running"; });
        if (!ended.length && !doc.trials.some(function (t) { return t.rungs.length; })) return;
        if (doc.best_over_time.length) {
          plotIn(holder, "best-over-time", [{ x: doc.best_over_time.map(function (p) { return p[0]; }),
            y: doc.best_over_time.map(function (p) { return p[1]; }), mode: "lines+markers", type: "scatter",
            line: { shape: "hv" }, name: plotText(first.metric) }],
            { title: { text: plotText("best " + first.metric + " so far"), x: 0.02, xanchor: "left" },
              xaxis: { title: { text: "seconds" } }, showlegend: false });
        }
        var curves = doc.trials.filter(function (t) { return t.rungs.length; }).map(function (t) {
          var y = t.rungs.map(function (r) { return Array.isArray(r[1]) ? r[1][0] : r[1]; });
          var stopped = t.stopped_rung !== null;
          return { x: t.rungs.map(function (r) { return r[0]; }), y: y, type: "scatter", mode: "lines+markers",
            name: plotText("trial " + t.trial + " (" + t.state + ")"),
            marker: { symbol: y.map(function (_, i) { return stopped && i === y.length - 1 ? "x" : "circle"; }),
              size: y.map(function (_, i) { return stopped && i === y.length - 1 ? 11 : 5; }) },
            line: { dash: stopped ? "dot" : "solid" } };
        });
        var curvesDiv = plotIn(holder, "rung-curves", curves, { title: { text: plotText(first.metric +
          " at the rungs (x: stopped there)"), x: 0.02, xanchor: "left" },
          xaxis: { title: { text: "step" }, type: "log" }, showlegend: false });
        curvesDiv.setAttribute("data-trials", curves.length);
        studyScatter(holder, doc, first);
        if (doc.objectives.length > 1) pareto(holder, doc);
        trialsTable(doc);
      });
    });
  }
  function studyLine(s) {
    var parts = Object.keys(s.states).map(function (k) { return s.states[k] + " " + k; });
    return s.trials + " of " + s.budget + " trials: " + parts.join(", ");
  }
  function studyScatter(holder, doc, first) {
    var done = doc.trials.filter(function (t) { return t.state === "complete" && t.values; });
    doc.params.forEach(function (p, i) {
      var values = done.map(function (t) { return t.params[p]; });
      var numeric = values.every(function (v) { return typeof v === "number"; });
      plotIn(holder, "study-param-" + i, [{ x: values.map(function (v) { return numeric ? v : plotText(String(v)); }),
        y: done.map(function (t) { return t.values[0]; }), mode: "markers", type: "scatter",
        text: done.map(function (t) { return "trial " + t.trial; }) }],
        { title: { text: plotText(p), x: 0.02, xanchor: "left" }, xaxis: { title: { text: plotText(p) },
          type: numeric ? "-" : "category" }, yaxis: { title: { text: plotText(first.metric) } } });
    });
  }
  function pareto(holder, doc) {
    var done = doc.trials.filter(function (t) { return t.state === "complete" && t.values; });
    var front = done.filter(function (t) { return doc.pareto.indexOf(t.trial) >= 0; });
    var pick = function (list, k) { return list.map(function (t) { return t.values[k]; }); };
    plotIn(holder, "pareto", [
      { x: pick(done, 0), y: pick(done, 1), mode: "markers", type: "scatter", name: "complete" },
      { x: pick(front, 0), y: pick(front, 1), mode: "markers", type: "scatter", name: "Pareto front",
        marker: { size: 11, symbol: "diamond" } }],
      { title: { text: "Pareto front", x: 0.02, xanchor: "left" }, xaxis: { title: { text: plotText(doc.objectives[0].metric) } },
        yaxis: { title: { text: plotText(doc.objectives[1].metric) } } });
  }
  function trialsTable(doc) {
    var table = document.getElementById("trials");
    headRow(table, ["trial", "state", "value", "stopped at", "parameters", "why"]);
    table.tBodies[0].replaceChildren.apply(table.tBodies[0], doc.trials.map(function (t) {
      var tr = el("tr");
      tr.appendChild(el("td", t.trial, "num"));
      tr.appendChild(el("td", t.state, "state-" + t.state.toUpperCase()));
      tr.appendChild(el("td", t.values ? t.values.map(function (v) { return num(v); }).join(", ") : "-", "num"));
      tr.appendChild(el("td", t.stopped_rung === null ? "-" : t.stopped_rung, "num"));
      tr.appendChild(el("td", paramsText(t) || "-"));
      tr.appendChild(el("td", t.reason || (t.retry_of !== null && t.retry_of !== undefined ? "retry of trial " + t.retry_of : "")));
      return tr;
    }));
  }

  if (PAGE === "runs") runsPage();
  else if (PAGE === "run") runPage();
  else if (PAGE === "sweep") sweepPage();
  else if (PAGE === "study") studyPage();
  document.documentElement.setAttribute("data-hpcx", "ready");
})();
