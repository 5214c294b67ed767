"use strict";
(function () {
  var REFRESH_MS = 5000;
  var COLORS = { ok: "#16a34a", bad: "#dc2626", fb: "#d97706", p50: "#2563eb", p95: "#7c3aed", p99: "#db2777", ttft: "#0891b2", cost: "#2563eb" };
  var PALETTE = ["#2563eb", "#16a34a", "#d97706", "#7c3aed", "#db2777", "#0891b2", "#64748b"];
  var state = { paused: false, timer: null, expanded: null, last: {} };
  var $ = function (id) { return document.getElementById(id); };

  function esc(s) {
    return String(s == null ? "" : s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function int(n) { return Number(n || 0).toLocaleString("en-US"); }
  function pct(x) { return (Number(x || 0) * 100).toFixed(1) + "%"; }
  function ms(x) { return int(Math.round(Number(x || 0))); }
  function usd(v) {
    v = Number(v || 0);
    if (v === 0) return "$0";
    if (Math.abs(v) < 0.01) return "$" + v.toFixed(6);
    if (Math.abs(v) < 1) return "$" + v.toFixed(4);
    return "$" + v.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 });
  }
  function age(s) {
    s = Math.round(s);
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }
  function hhmm(d) { return d.toISOString().slice(11, 16); }
  function setText(id, v, raw) {
    var el = $(id);
    if (!el) return;
    el.textContent = v;
    if (raw !== undefined) el.setAttribute("data-value", String(raw));
  }
  function since() { return $("since").value; }

  function getJSON(path) {
    return fetch(path, { credentials: "same-origin", headers: { Accept: "application/json" } }).then(function (r) {
      return r.json().then(function (body) {
        if (!r.ok) throw new Error((body && body.error && body.error.message) || ("HTTP " + r.status));
        return body;
      });
    });
  }

  // ---- charts: small SVG line/bar charts with axes, units and a legend ----
  function niceTicks(max, count) {
    if (!(max > 0)) max = 1;
    var raw = max / count, mag = Math.pow(10, Math.floor(Math.log10(raw))), step;
    var n = raw / mag;
    step = (n <= 1 ? 1 : n <= 2 ? 2 : n <= 2.5 ? 2.5 : n <= 5 ? 5 : 10) * mag;
    var ticks = [];
    for (var v = 0; v <= max + step * 1e-9; v += step) ticks.push(v);
    if (ticks[ticks.length - 1] < max) ticks.push(ticks[ticks.length - 1] + step);
    return ticks;
  }
  function tickLabel(v) {
    if (v === 0) return "0";
    if (v >= 1e6) return (v / 1e6).toFixed(v % 1e6 ? 1 : 0) + "M";
    if (v >= 1e3) return (v / 1e3).toFixed(v % 1e3 ? 1 : 0) + "k";
    if (v >= 1) return String(Math.round(v * 100) / 100);
    return String(Number(v.toPrecision(2)));
  }
  function chart(el, xs, series, opts) {
    opts = opts || {};
    var W = Math.max(240, el.clientWidth || 360), H = el.clientHeight || 190;
    var legendH = 18, m = { l: 44, r: 10, t: 8, b: 22 + legendH };
    var iw = W - m.l - m.r, ih = H - m.t - m.b;
    var max = 0;
    series.forEach(function (s) { s.values.forEach(function (v) { if (v > max) max = v; }); });
    var ticks = niceTicks(max, 4), top = ticks[ticks.length - 1] || 1;
    var n = xs.length;
    var x = function (i) { return m.l + (n <= 1 ? iw / 2 : (i * iw) / (n - 1)); };
    var y = function (v) { return m.t + ih - (v / top) * ih; };
    var out = ['<svg width="100%" height="' + H + '" viewBox="0 0 ' + W + " " + H + '" preserveAspectRatio="xMinYMin meet" role="img" aria-label="' + esc(opts.label || "") + '">'];
    ticks.forEach(function (t) {
      out.push('<line class="grid" x1="' + m.l + '" x2="' + (W - m.r) + '" y1="' + y(t) + '" y2="' + y(t) + '"/>');
      out.push('<text x="' + (m.l - 6) + '" y="' + (y(t) + 4) + '" text-anchor="end">' + tickLabel(t) + "</text>");
    });
    out.push('<line class="axis" x1="' + m.l + '" x2="' + (W - m.r) + '" y1="' + (m.t + ih) + '" y2="' + (m.t + ih) + '"/>');
    var every = Math.max(1, Math.ceil(n / Math.max(2, Math.floor(iw / 70))));
    for (var i = 0; i < n; i += every) {
      out.push('<text x="' + x(i) + '" y="' + (m.t + ih + 15) + '" text-anchor="middle">' + hhmm(xs[i]) + "</text>");
    }
    if (opts.bars) {
      var bw = Math.max(1, (iw / Math.max(n, 1)) * 0.7);
      series.forEach(function (s) {
        s.values.forEach(function (v, i) {
          if (v > 0) out.push('<rect x="' + (x(i) - bw / 2) + '" y="' + y(v) + '" width="' + bw + '" height="' + (m.t + ih - y(v)) + '" fill="' + s.color + '" rx="1"><title>' + hhmm(xs[i]) + " " + esc(s.name) + ": " + (opts.fmt || tickLabel)(v) + "</title></rect>");
        });
      });
    } else {
      series.forEach(function (s) {
        var d = s.values.map(function (v, i) { return (i ? "L" : "M") + x(i).toFixed(1) + " " + y(v).toFixed(1); }).join("");
        out.push('<path d="' + d + '" fill="none" stroke="' + s.color + '" stroke-width="1.8"' + (s.dash ? ' stroke-dasharray="4 3"' : "") + ' stroke-linejoin="round"/>');
      });
    }
    var lx = m.l;
    series.forEach(function (s) {
      out.push('<rect x="' + lx + '" y="' + (H - 10) + '" width="10" height="3" rx="1" fill="' + s.color + '"/>');
      out.push('<text x="' + (lx + 14) + '" y="' + (H - 6) + '">' + esc(s.name) + "</text>");
      lx += 22 + s.name.length * 6.2;
    });
    out.push("</svg>");
    el.innerHTML = out.join("");
  }

  // ---- sections ----
  function renderOverview(o) {
    state.last.overview = o;
    var t = o.totals;
    setText("kpi-requests", int(t.requests), t.requests);
    setText("kpi-rps", t.requests_per_s.toFixed(3) + " req/s", t.requests_per_s);
    setText("kpi-succeeded", int(t.succeeded), t.succeeded);
    setText("kpi-success-rate", pct(t.success_rate) + " success", t.success_rate);
    setText("kpi-failed", int(t.failed), t.failed);
    setText("kpi-error-rate", pct(t.error_rate) + " errors", t.error_rate);
    setText("kpi-fallbacks", int(t.fallbacks), t.fallbacks);
    setText("kpi-fallback-rate", pct(t.fallback_rate) + " fallback", t.fallback_rate);
    setText("kpi-attempts", int(t.attempts), t.attempts);
    setText("kpi-p95", ms(t.p95_ms) + " ms", t.p95_ms);
    setText("kpi-latency", "p50 " + ms(t.p50_ms) + " · p99 " + ms(t.p99_ms) + " ms");
    setText("kpi-tokens", int(t.input_tokens) + " / " + int(t.output_tokens));
    setText("kpi-cost", usd(t.cost_usd), t.cost_usd);
    setText("kpi-cost-note", t.unknown_cost_rows ? int(t.unknown_cost_rows) + " jobs without a price, not counted" : "known prices");
    drawCharts();
  }
  function drawCharts() {
    var o = state.last.overview;
    if (!o) return;
    var xs = o.series.map(function (p) { return new Date(p.t); });
    var per = o.bucket_s || 60;
    var rate = function (k) { return o.series.map(function (p) { return p[k] / per; }); };
    chart($("chart-rps"), xs, [
      { name: "succeeded", color: COLORS.ok, values: rate("succeeded") },
      { name: "failed", color: COLORS.bad, values: rate("failed") },
      { name: "fell back", color: COLORS.fb, values: rate("fallbacks"), dash: true }
    ], { label: "requests per second" });
    var col = function (k) { return o.series.map(function (p) { return p[k]; }); };
    chart($("chart-latency"), xs, [
      { name: "p50", color: COLORS.p50, values: col("p50_ms") },
      { name: "p95", color: COLORS.p95, values: col("p95_ms") },
      { name: "p99", color: COLORS.p99, values: col("p99_ms") },
      { name: "TTFT p50", color: COLORS.ttft, values: col("ttft_p50_ms"), dash: true }
    ], { label: "latency in milliseconds" });
    chart($("chart-cost"), xs, [
      { name: "cost per hour", color: COLORS.cost, values: o.series.map(function (p) { return (p.cost_usd * 3600) / per; }) }
    ], { bars: true, fmt: usd, label: "cost in USD per hour" });
  }
  function emptyRow(cols, msg) { return '<tr class="empty"><td colspan="' + cols + '">' + esc(msg) + "</td></tr>"; }
  function badge(text, cls) { return '<span class="badge ' + esc(cls || text) + '">' + esc(text) + "</span>"; }

  function renderProviders(p) {
    var rows = p.models.map(function (r) {
      return '<tr data-key="' + esc(r.key) + '"><td class="mono">' + esc(r.key) + "</td><td>" + (r.breaker ? badge(r.breaker.replace("_", "-"), r.breaker) : '<span class="muted">–</span>') +
        '</td><td class="n" data-col="calls">' + int(r.requests) + '</td><td class="n">' + pct(r.success_rate) + '</td><td class="n w">' + pct(r.fallback_rate) +
        '</td><td class="n w">' + ms(r.p50_ms) + '</td><td class="n">' + ms(r.p95_ms) + '</td><td class="n w">' + ms(r.p99_ms) +
        '</td><td class="n w">' + int(r.input_tokens) + '</td><td class="n w">' + int(r.output_tokens) + '</td><td class="n" data-value="' + r.cost_usd + '">' + usd(r.cost_usd) + (r.unknown_cost_rows ? "*" : "") + "</td></tr>";
    });
    document.querySelector("#models-table tbody").innerHTML = rows.join("") || emptyRow(11, "No provider calls in this window.");
    var max = p.errors.reduce(function (a, e) { return Math.max(a, e.calls); }, 0);
    document.querySelector("#errors-table tbody").innerHTML = p.errors.map(function (e) {
      return '<tr><td class="mono">' + esc(e.provider + "/" + e.model) + '</td><td class="n">' + (e.status_code || "–") + "</td><td>" + badge(e.error_type || "unknown", "bad") +
        '</td><td class="n" data-col="calls">' + int(e.calls) + '</td><td><div class="hbar" style="width:' + ((100 * e.calls) / max).toFixed(1) + '%"></div></td></tr>';
    }).join("") || emptyRow(5, "No failed calls in this window.");
  }

  function renderRoutes(r) {
    document.querySelector("#routes-table tbody").innerHTML = r.routes.map(function (rt) {
      var total = rt.served.reduce(function (a, s) { return a + s.jobs; }, 0);
      var stack = rt.served.map(function (s, i) {
        return '<i style="width:' + ((100 * s.jobs) / (total || 1)).toFixed(1) + "%;background:" + PALETTE[i % PALETTE.length] + '"></i>';
      }).join("");
      var served = rt.served.map(function (s, i) {
        return '<span class="mono" style="color:' + PALETTE[i % PALETTE.length] + '">' + esc(s.provider ? s.provider + "/" + s.model : "(none)") + "</span> " + int(s.jobs);
      }).join(" · ");
      return '<tr data-key="' + esc(rt.name) + '"><td class="mono" title="' + esc(rt.targets.join(" → ")) + '">' + esc(rt.name || "(pinned)") + '</td><td class="w">' + esc(rt.strategy || "–") +
        '</td><td class="n" data-col="jobs">' + int(rt.requests) + '</td><td class="n">' + pct(rt.success_rate) + '</td><td class="n">' + pct(rt.fallback_rate) +
        '</td><td class="n w">' + ms(rt.p95_ms) + '</td><td class="n w" data-value="' + rt.cost_usd + '">' + usd(rt.cost_usd) + "</td><td>" +
        (total ? '<span class="stack">' + stack + "</span>" + served : '<span class="muted">' + esc(rt.targets.join(" → ")) + "</span>") + "</td></tr>";
    }).join("") || emptyRow(8, "No routes.");
  }

  function meter(spent, budget) {
    if (!budget) return usd(spent) + ' <span class="muted">no cap</span>';
    var f = Math.min(1, spent / budget);
    return '<span class="meter' + (f >= 0.9 ? " hot" : "") + '"><i style="width:' + (f * 100).toFixed(1) + '%"></i></span>' + usd(spent) + ' <span class="muted">of ' + usd(budget) + "</span>";
  }
  function renderTenants(t) {
    document.querySelector("#tenants-table tbody").innerHTML = t.tenants.map(function (r) {
      return '<tr data-key="' + esc(r.tenant) + '"><td class="mono">' + esc(r.tenant || "(none)") + '</td><td class="n" data-col="jobs">' + int(r.requests) +
        '</td><td class="n w">' + int(r.input_tokens) + '</td><td class="n w">' + int(r.output_tokens) + '</td><td class="n" data-value="' + r.cost_usd + '">' + usd(r.cost_usd) +
        "</td><td>" + meter(r.spent_day_usd, r.daily_budget_usd) + "</td><td>" + meter(r.spent_month_usd, r.monthly_budget_usd) + "</td></tr>";
    }).join("") || emptyRow(7, "No tenants in this window.");
  }

  function renderQueue(q) {
    var pending = 0, inprog = 0;
    document.querySelector("#queue-table tbody").innerHTML = q.lanes.map(function (l) {
      pending += l.pending; inprog += l.in_progress;
      return '<tr><td class="mono">' + esc(l.provider) + "</td><td>" + badge(l.lane, l.lane === "high" ? "warn" : "") + '</td><td class="n">' + int(l.pending) +
        '</td><td class="n w">' + int(l.in_progress) + '</td><td class="n w">' + (l.consumer ? int(l.waiting_pulls) : '<span class="muted">no consumer</span>') +
        '</td><td class="n">' + (l.oldest ? age(l.oldest_age_s) : '<span class="muted">–</span>') + "</td></tr>";
    }).join("") || emptyRow(6, "No providers configured.");
    setText("q-pending", int(pending), pending);
    setText("q-inprogress", int(inprog), inprog);
    setText("q-workers", int(q.waiting_pulls), q.waiting_pulls);
    setText("q-dlq", int(q.dlq), q.dlq);
    var b = q.analytics.buffered;
    setText("q-buffered", b < 0 ? "unknown" : int(b), b);
    var subj = Object.keys(q.dlq_by_subject || {}).sort().map(function (s) { return s + ": " + q.dlq_by_subject[s]; });
    $("q-dlq-subjects").textContent = (subj.length ? "Dead letters by subject — " + subj.join(", ") + ". Replay with `switchboard dlq replay`." : "") +
      (q.errors && q.errors.length ? " Could not read: " + q.errors.join("; ") : "");
  }

  // The logged request and response (analytics.log_bodies), when stored.
  function bodies(job) {
    if (!job.request_body && !job.response_body) return "";
    return '<div class="bodies"><div><div class="muted">request</div><pre class="body" data-body="request">' + esc(job.request_body || "") +
      '</pre></div><div><div class="muted">response</div><pre class="body" data-body="response">' + esc(job.response_body || "") + "</pre></div></div>";
  }

  function renderJobs(j) {
    var body = document.querySelector("#jobs-table tbody");
    if (state.expanded === null && j.jobs.length) state.expanded = j.jobs[0].job_id;
    body.innerHTML = j.jobs.map(function (job) {
      var open = state.expanded === job.job_id;
      var attempts = job.attempts.map(function (a, i) {
        return '<tr class="attempt"><td class="n">' + (i + 1) + '</td><td class="mono">' + esc(a.provider + "/" + a.model) + "</td><td>" +
          badge(a.outcome, a.outcome === "ok" ? "ok" : a.outcome === "retry" ? "warn" : "bad") + '</td><td class="n">' + (a.status_code || "–") + "</td><td>" + esc(a.error_type || "") +
          '</td><td class="n">' + ms(a.duration_ms) + '</td><td class="mono">' + esc(a.started_at.slice(11, 19)) + "</td></tr>";
      }).join("");
      return '<tr class="job" data-job="' + esc(job.job_id) + '"><td class="mono"><span class="w">' + esc(job.ts.slice(0, 10)) + " </span>" + esc(job.ts.slice(11, 19)) + '</td><td class="mono"><a href="#" data-toggle="' + esc(job.job_id) + '" title="' + esc(job.job_id) + '">' +
        (open ? "▾ " : "▸ ") + '<span class="w">' + esc(job.job_id.slice(0, 8)) + "</span>…" + esc(job.job_id.slice(-4)) + '</a></td><td class="mono w">' + esc(job.route || "–") + '</td><td class="mono w">' + esc(job.tenant || "–") +
        "</td><td>" + badge(job.status, job.status === "succeeded" ? "ok" : "bad") + (job.fallback ? " " + badge("fallback", "warn") : "") + (job.error_type ? ' <span class="muted w">' + esc(job.error_type) + "</span>" : "") +
        '</td><td class="mono w">' + esc(job.provider ? job.provider + "/" + job.model : "–") + '</td><td class="n" data-col="attempts">' + int(job.attempt_count) + '</td><td class="n w">' + ms(job.total_ms) +
        '</td><td class="n w">' + (job.cost_usd == null ? '<span class="muted">no price</span>' : usd(job.cost_usd)) + "</td></tr>" +
        '<tr class="detail" data-detail="' + esc(job.job_id) + '"' + (open ? "" : " hidden") + '><td colspan="9"><div class="mono">' + esc(job.job_id) + '</div><table class="attempts"><thead><tr><th class="n">#</th><th>Provider / model</th><th>Outcome</th><th class="n">Status</th><th>Error</th><th class="n">Duration ms</th><th>Started</th></tr></thead><tbody>' +
        (attempts || emptyRow(7, "no attempts recorded")) + '</tbody></table><div class="timings">route ' + esc(job.route || "–") + " · tenant " + esc(job.tenant || "–") + " · served by " + esc(job.provider ? job.provider + "/" + job.model : "–") +
        " · cost " + (job.cost_usd == null ? "no price" : usd(job.cost_usd)) + '</div><div class="timings">queued ' + ms(job.queued_ms) + " ms · first token " + ms(job.ttft_ms) + " ms · provider " + ms(job.provider_ms) + " ms · total " + ms(job.total_ms) +
        " ms · tokens " + int(job.input_tokens) + " in / " + int(job.output_tokens) + " out</div>" + bodies(job) + "</td></tr>";
    }).join("");
    $("jobs-empty").hidden = j.jobs.length > 0;
  }

  function jobsQuery() {
    var f = new FormData($("search")), p = new URLSearchParams({ since: since() });
    f.forEach(function (v, k) { if (v) p.set(k, v); });
    return "/api/jobs?" + p.toString();
  }

  function refresh() {
    var s = "since=" + encodeURIComponent(since());
    var banner = null;
    var note = function (a) { if (a && !a.available && !banner) banner = a.message; };
    var tasks = [
      getJSON("/api/overview?" + s).then(function (o) { note(o.analytics); renderOverview(o); }),
      getJSON("/api/providers?" + s).then(function (p) { note(p.analytics); renderProviders(p); }),
      getJSON("/api/routes?" + s).then(function (r) { note(r.analytics); renderRoutes(r); }),
      getJSON("/api/tenants?" + s).then(function (t) { note(t.analytics); renderTenants(t); }),
      getJSON("/api/queue?" + s).then(renderQueue),
      getJSON(jobsQuery()).then(function (j) { note(j.analytics); renderJobs(j); })
    ];
    var failed = [];
    return Promise.all(tasks.map(function (p) { return p.catch(function (e) { failed.push(e.message); }); })).then(function () {
      var el = $("banner");
      var msg = failed.length ? "Could not load: " + failed.join("; ") : banner;
      el.hidden = !msg;
      el.textContent = msg || "";
      var now = new Date();
      $("updated").textContent = "updated " + now.toTimeString().slice(0, 8) + (state.paused ? " · paused" : " · every " + REFRESH_MS / 1000 + " s");
      document.body.setAttribute("data-loaded", String(Number(document.body.getAttribute("data-loaded") || 0) + 1));
    });
  }
  function schedule() {
    clearTimeout(state.timer);
    if (!state.paused) state.timer = setTimeout(function () { refresh().then(schedule); }, REFRESH_MS);
  }

  $("since").addEventListener("change", function () { refresh().then(schedule); });
  $("pause").addEventListener("click", function () {
    state.paused = !state.paused;
    this.setAttribute("aria-pressed", String(state.paused));
    this.textContent = state.paused ? "Resume" : "Pause";
    if (state.paused) clearTimeout(state.timer); else refresh().then(schedule);
  });
  $("search").addEventListener("submit", function (e) {
    e.preventDefault();
    state.expanded = null;
    getJSON(jobsQuery()).then(renderJobs).catch(function (err) { $("banner").hidden = false; $("banner").textContent = err.message; });
  });
  document.querySelector("#jobs-table tbody").addEventListener("click", function (e) {
    var a = e.target.closest("[data-toggle]");
    if (!a) return;
    e.preventDefault();
    var id = a.getAttribute("data-toggle");
    state.expanded = state.expanded === id ? "" : id;
    document.querySelectorAll("#jobs-table tr.detail").forEach(function (tr) { tr.hidden = tr.getAttribute("data-detail") !== state.expanded; });
    document.querySelectorAll("#jobs-table [data-toggle]").forEach(function (x) {
      x.firstChild.nodeValue = x.getAttribute("data-toggle") === state.expanded ? "▾ " : "▸ ";
    });
  });
  var resizeTimer;
  window.addEventListener("resize", function () { clearTimeout(resizeTimer); resizeTimer = setTimeout(drawCharts, 150); });
  refresh().then(schedule);
})();
