// The run page: charts, live rollout, hints and status, fed by the run's WebSocket.
// Every text that comes from users or the LLM is set with textContent, never as HTML.
(function () {
  "use strict";

  const runId = document.getElementById("run-script").dataset.runId;
  const hasTeacher = document.getElementById("run-script").dataset.teacher === "1";
  let state = JSON.parse(document.getElementById("run-state").textContent);
  let lastSeq = 0; // highest stored event applied; frames are not stored and do not count
  let lastFrameSeq = 0;
  // Reconnect with exponential backoff and jitter; the delay resets once a back-fill succeeds
  // (not on open: a server that accepts and then fails would otherwise be hammered).
  const RETRY_MIN_MS = 500;
  const RETRY_MAX_MS = 5000;
  // While connected, ask again for what was stored after lastSeq every RESYNC_MS: heals live
  // messages the channel layer lost (Redis lost its data, a channel was full) without a reconnect.
  // A back-fill unanswered after BACKFILL_TIMEOUT_MS means a dead connection: reconnect.
  const RESYNC_MS = 10000;
  const BACKFILL_TIMEOUT_MS = 15000;
  let retryDelayMs = RETRY_MIN_MS;
  let socket = null;
  let backfillSentAt = null; // when the unanswered back-fill request was sent, or null
  let complete = false; // a back-fill answer said the run was final: nothing more can come

  const $ = (id) => document.getElementById(id);

  // --- charts ------------------------------------------------------------------------------

  const CHARTS = [
    { id: "chart-return", title: "Mean return", unit: [0, 1], traces: [
      { name: "training (last 100 episodes)", kind: "metrics", field: "mean_return", series: "mean_return" },
      { name: "evaluation (greedy)", kind: "evaluation", field: "mean_return", series: "eval_return" },
      { name: "evaluation (sampled)", kind: "evaluation", field: "sampled_mean_return", series: "eval_sampled_return" } ] },
    { id: "chart-success", title: "Success rate", unit: [0, 1], traces: [
      { name: "training", kind: "metrics", field: "success_rate", series: "success_rate" },
      { name: "evaluation (greedy)", kind: "evaluation", field: "success_rate", series: "eval_success" },
      { name: "evaluation (sampled)", kind: "evaluation", field: "sampled_success_rate", series: "eval_sampled_success" } ] },
    // Measured each rollout on the probe states the teacher has answered so far (its latest
    // answer on each, without waiting for the LLM): the hover says on how many.
    { id: "chart-teacher", title: "Teacher accuracy (vs. BabyAI bot)", unit: [0, 1],
      empty: hasTeacher ? "measuring: the first value comes with the first rollout" : "no LLM teacher in this mode", traces: [
      { name: "on the probe states answered", kind: "metrics", field: "teacher_accuracy", series: "teacher_accuracy",
        text: (d) => typeof d.teacher_accuracy_answered === "number"
          ? "on " + d.teacher_accuracy_answered + " of " + d.probe_states + " probe states" : "" },
      { name: "probe states answered (share)", kind: "metrics", dash: "dot",
        value: (d) => (d.probe_states ? d.teacher_accuracy_answered / d.probe_states : undefined) } ] },
    { id: "chart-guidance", title: "Guidance coefficient", traces: [
      { name: "guidance coef", kind: "metrics", field: "guidance_coef", series: "guidance_coef" } ] },
    { id: "chart-fps", title: "Frames per second", traces: [
      { name: "fps", kind: "progress", field: "fps", series: "fps" } ] },
  ];

  const plotly = window.Plotly;
  for (const chart of CHARTS) {
    const layout = {
      title: { text: chart.title, font: { size: 14 } },
      margin: { l: 45, r: 10, t: 35, b: 35 },
      xaxis: { title: { text: "frames", standoff: 2 }, automargin: true },
      yaxis: chart.unit ? { range: [chart.unit[0] - 0.02, chart.unit[1] + 0.02] } : {},
      legend: { orientation: "h", y: -0.3, yanchor: "top" }, // below the axis title, not over it
      height: 260,
      annotations: chart.empty ? [emptyNote(chart.empty)] : [],
    };
    const traces = chart.traces.map((t) => ({
      x: [], y: [], text: [], name: t.name, mode: t.dash ? "lines" : "lines+markers", marker: { size: 3 },
      line: t.dash ? { dash: t.dash, width: 1 } : {},
    }));
    plotly.newPlot(chart.id, traces, layout, { displayModeBar: false, responsive: true });
  }

  // A chart without points says why (chart.empty), until its first point.
  function emptyNote(text) {
    return { text: text, showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5, font: { color: "#667085" } };
  }

  const teacherChart = CHARTS.find((c) => c.id === "chart-teacher");
  const NO_PROBES = "not measured: the BabyAI bot does not play this level";

  function plotEvents(events) {
    if (teacherChart.empty && teacherChart.empty !== NO_PROBES
        && events.some((e) => e.kind === "metrics" && e.data.probe_states === 0)) {
      teacherChart.empty = NO_PROBES;
      plotly.relayout(teacherChart.id, { annotations: [emptyNote(NO_PROBES)] });
    }
    for (const chart of CHARTS) {
      const xs = chart.traces.map(() => []);
      const ys = chart.traces.map(() => []);
      const texts = chart.traces.map(() => []);
      for (const e of events) {
        chart.traces.forEach((t, i) => {
          if (e.kind !== t.kind) return;
          const value = t.value ? t.value(e.data) : e.data[t.field];
          if (typeof value === "number" && isFinite(value)) {
            xs[i].push(e.timestep); ys[i].push(value); texts[i].push(t.text ? t.text(e.data) : "");
          }
        });
      }
      const indices = chart.traces.map((_, i) => i).filter((i) => xs[i].length);
      const pick = (arrays) => indices.map((i) => arrays[i]);
      extendChart(chart, indices, pick(xs), pick(ys), pick(texts));
    }
  }

  // Adds points to the traces ``indices`` of the chart; its first points take its note away.
  function extendChart(chart, indices, x, y, text) {
    if (!indices.length) return;
    plotly.extendTraces(chart.id, { x: x, y: y, text: text }, indices);
    if (chart.empty) { plotly.relayout(chart.id, { annotations: [] }); chart.empty = null; }
  }

  // A long run's first back-fill starts with its history: each trace's series (trace.series,
  // the server's rollups.SERIES), one point per chunk of events, at their mean; the events
  // after through_seq follow one by one. (The share of probe states answered has no series: its
  // line starts where the events do.)
  function plotHistory(message) {
    for (const chart of CHARTS) {
      const indices = chart.traces.map((_, i) => i).filter((i) => {
        const series = message.series[chart.traces[i].series];
        return series && series.x.length;
      });
      const curves = indices.map((i) => message.series[chart.traces[i].series]);
      const texts = curves.map((c) => c.n.map((n, k) => n > 1
        ? "mean of " + n + " (" + c.low[k] + " to " + c.high[k] + ")" : ""));
      extendChart(chart, indices, curves.map((c) => c.x), curves.map((c) => c.y), texts);
    }
    lastSeq = Math.max(lastSeq, message.through_seq);
  }

  // --- events ------------------------------------------------------------------------------

  // Live events reach the charts at most once every PLOT_EVERY_MS: each Plotly update redraws
  // its charts whole, and one per rollout (several a second with small rollouts) kept the
  // renderer busy enough to slow the rollout view down. A back-fill's answer, and the events
  // that came with the run's end, are drawn at once.
  const PLOT_EVERY_MS = 1000;
  let pendingPlot = [];
  let plotTimer = null;

  function flushPlot() {
    if (plotTimer !== null) { window.clearTimeout(plotTimer); plotTimer = null; }
    if (!pendingPlot.length) return;
    const events = pendingPlot;
    pendingPlot = [];
    plotEvents(events);
  }

  function applyEvents(events) {
    const fresh = events.filter((e) => e.seq > lastSeq).sort((a, b) => a.seq - b.seq);
    if (!fresh.length) return;
    lastSeq = fresh[fresh.length - 1].seq;
    pendingPlot.push(...fresh);
    if (plotTimer === null) plotTimer = window.setTimeout(flushPlot, PLOT_EVERY_MS);
    const hints = fresh.filter((e) => e.kind === "hint");
    if (hints.length) showHint(hints[hints.length - 1]);
    const plans = fresh.filter((e) => e.kind === "metrics" && typeof e.data.plan_loops === "number");
    if (plans.length) showPlanFaults(plans[plans.length - 1].data);
  }

  function showPlanFaults(d) {
    $("plan-faults").textContent = "plan states where every subgoal failed (plan loops): " + d.plan_loops +
      " · subgoals chosen with no way to them: " + (d.plans_without_way || 0) +
      " · plan states with feedback: " + (d.feedback_situations || 0);
  }

  function showHint(event) {
    const d = event.data;
    $("hint-info").textContent = "at frame " + event.timestep + (d.source ? " · " + d.source : "");
    $("situation").textContent = d.situation || "";
    $("teacher-action").textContent = d.teacher_action || "(no guidance)";
    $("action-taken").textContent = d.action_taken || "–";
    $("feedback").textContent = d.feedback || "none yet";
    // Subgoal guidance: the teacher's plan for environment 0, and what the student reached.
    $("plan").hidden = !d.plan;
    if (d.plan) {
      $("plan-state").textContent = d.plan.state || "";
      $("plan-subgoal").textContent = d.plan.subgoal || "(none: no plan for this state yet)";
      $("plan-reached").textContent = (d.plan.reached || []).join(", ") || "nothing yet";
    }
    const bars = $("distribution");
    bars.replaceChildren();
    const entries = Object.entries(d.distribution || {});
    const best = entries.reduce((m, [, p]) => Math.max(m, p), 0);
    for (const [action, p] of entries) {
      const row = document.createElement("div");
      row.className = "bar-row" + (p === best ? " best" : "");
      const label = document.createElement("span");
      label.className = "bar-label";
      label.textContent = action;
      const track = document.createElement("span");
      track.className = "bar-track";
      const fill = document.createElement("span");
      fill.className = "bar-fill";
      fill.style.width = (Math.max(0, Math.min(1, Number(p) || 0)) * 100).toFixed(1) + "%";
      track.appendChild(fill);
      const value = document.createElement("span");
      value.className = "bar-value";
      value.textContent = (Number(p) || 0).toFixed(3);
      row.append(label, track, value);
      bars.appendChild(row);
    }
  }

  // --- live rollout ------------------------------------------------------------------------

  // minigrid's encoding: object index, color index, state (doors: 0 open, 1 closed, 2 locked).
  const COLORS = ["#ff0000", "#00c000", "#0050ff", "#7027c3", "#e0c000", "#646464"];
  const OBJECT = { EMPTY: 1, WALL: 2, FLOOR: 3, DOOR: 4, KEY: 5, BALL: 6, BOX: 7, GOAL: 8, LAVA: 9 };

  // The engine sends frames in bursts of consecutive steps, on average one every interval_s
  // (workers.engine.LiveView). They are played one every interval_s, so a burst that arrives at
  // once plays step by step, through the PPO update that follows it. A queue longer than
  // MAX_LAG_S (a tab that was hidden) is cut to its newest frames.
  const MAX_LAG_S = 5;
  const frameQueue = [];
  let playTimer = null;

  function receiveFrame(event) {
    if (event.seq <= lastFrameSeq) return;
    lastFrameSeq = event.seq;
    frameQueue.push(event);
    const keep = Math.ceil(MAX_LAG_S / frameInterval(event));
    if (frameQueue.length > keep) frameQueue.splice(0, frameQueue.length - keep);
    if (playTimer === null) playNextFrame();
  }

  function frameInterval(event) {
    return Math.max(1 / 60, Number(event.data.interval_s) || 0.06);
  }

  function playNextFrame() {
    const event = frameQueue.shift();
    if (event === undefined) { playTimer = null; return; }
    drawFrame(event);
    playTimer = window.setTimeout(playNextFrame, 1000 * frameInterval(event));
  }

  function drawFrame(event) {
    const d = event.data;
    const canvas = $("rollout");
    const ctx = canvas.getContext("2d");
    const cell = Math.floor(Math.min(canvas.width / d.width, canvas.height / d.height));
    ctx.fillStyle = "#111";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    for (let y = 0; y < d.height; y++) {
      for (let x = 0; x < d.width; x++) {
        const i = (y * d.width + x) * 3;
        drawCell(ctx, x * cell, y * cell, cell, d.grid[i], d.grid[i + 1], d.grid[i + 2]);
      }
    }
    if (d.view) shadeView(ctx, d, cell);
    ctx.strokeStyle = "#333";
    for (let k = 0; k <= d.width; k++) { ctx.beginPath(); ctx.moveTo(k * cell, 0); ctx.lineTo(k * cell, d.height * cell); ctx.stroke(); }
    for (let k = 0; k <= d.height; k++) { ctx.beginPath(); ctx.moveTo(0, k * cell); ctx.lineTo(d.width * cell, k * cell); ctx.stroke(); }
    drawAgent(ctx, d.agent, cell);
    canvas.dataset.seq = String(event.seq); // which frame is shown (the frame-rate test counts these)
    $("mission").textContent = d.mission || "";
    $("frame-info").textContent = "step " + d.episode_step + (d.action ? " · " + d.action : "");
    const returns = [];
    if (typeof d.episode_return === "number") returns.push("Return so far " + d.episode_return.toFixed(2));
    if (typeof d.last_episode_return === "number") returns.push("last episode " + d.last_episode_return.toFixed(2));
    $("episode-return").textContent = returns.join(" · ");
    $("view-info").textContent = d.view ? "Shaded: the agent's " + (d.view[2] - d.view[0]) + "×" + (d.view[3] - d.view[1]) + " field of view." : "";
  }

  // Lightens the agent's field of view (d.view: [x0, y0, x1, y1], ends excluded), as minigrid's
  // own renderer does; the part past the grid's edges is not drawn.
  function shadeView(ctx, d, cell) {
    const [x0, y0, x1, y1] = d.view;
    const left = Math.max(0, x0), top = Math.max(0, y0);
    const right = Math.min(d.width, x1), bottom = Math.min(d.height, y1);
    if (right <= left || bottom <= top) return;
    ctx.fillStyle = "rgba(255, 255, 255, 0.25)";
    ctx.fillRect(left * cell, top * cell, (right - left) * cell, (bottom - top) * cell);
  }

  function drawCell(ctx, px, py, size, object, color, stateIndex) {
    const c = COLORS[color] || "#888";
    const mid = size / 2;
    switch (object) {
      case OBJECT.WALL: ctx.fillStyle = "#646464"; ctx.fillRect(px, py, size, size); break;
      case OBJECT.FLOOR: ctx.fillStyle = c; ctx.globalAlpha = 0.3; ctx.fillRect(px, py, size, size); ctx.globalAlpha = 1; break;
      case OBJECT.GOAL: ctx.fillStyle = "#00c000"; ctx.fillRect(px + 1, py + 1, size - 2, size - 2); break;
      case OBJECT.LAVA: ctx.fillStyle = "#ff8000"; ctx.fillRect(px + 1, py + 1, size - 2, size - 2); break;
      case OBJECT.BALL:
        ctx.fillStyle = c; ctx.beginPath(); ctx.arc(px + mid, py + mid, size * 0.32, 0, 2 * Math.PI); ctx.fill(); break;
      case OBJECT.BOX:
        ctx.strokeStyle = c; ctx.lineWidth = Math.max(2, size / 12);
        ctx.strokeRect(px + size * 0.15, py + size * 0.15, size * 0.7, size * 0.7); ctx.lineWidth = 1; break;
      case OBJECT.KEY:
        ctx.fillStyle = c;
        ctx.beginPath(); ctx.arc(px + mid, py + size * 0.3, size * 0.15, 0, 2 * Math.PI); ctx.fill();
        ctx.fillRect(px + mid - size * 0.05, py + size * 0.4, size * 0.1, size * 0.45);
        ctx.fillRect(px + mid, py + size * 0.7, size * 0.15, size * 0.07); break;
      case OBJECT.DOOR:
        ctx.strokeStyle = c; ctx.lineWidth = Math.max(2, size / 12);
        if (stateIndex === 0) { // open: only the frame
          ctx.strokeRect(px + 2, py + 2, size - 4, size - 4);
        } else {
          ctx.fillStyle = c; ctx.globalAlpha = stateIndex === 2 ? 0.8 : 0.35;
          ctx.fillRect(px + 2, py + 2, size - 4, size - 4); ctx.globalAlpha = 1;
          ctx.strokeRect(px + 2, py + 2, size - 4, size - 4);
        }
        ctx.lineWidth = 1; break;
      default: break; // empty or unseen
    }
  }

  function drawAgent(ctx, agent, size) {
    if (!agent) return;
    const [x, y, dir] = agent;
    const cx = x * size + size / 2, cy = y * size + size / 2, r = size * 0.38;
    const angle = [0, Math.PI / 2, Math.PI, -Math.PI / 2][dir] || 0; // 0 right, 1 down, 2 left, 3 up
    ctx.save();
    ctx.translate(cx, cy);
    ctx.rotate(angle);
    ctx.fillStyle = "#ff3030";
    ctx.beginPath(); ctx.moveTo(r, 0); ctx.lineTo(-r * 0.8, -r * 0.75); ctx.lineTo(-r * 0.8, r * 0.75); ctx.closePath(); ctx.fill();
    ctx.restore();
  }

  // --- run state ---------------------------------------------------------------------------

  function formatDuration(seconds) {
    if (seconds === null || seconds === undefined) return "";
    const s = Math.max(0, Math.round(seconds));
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
    return h ? h + "h " + String(m).padStart(2, "0") + "m" : m ? m + "m " + String(r).padStart(2, "0") + "s" : r + "s";
  }

  const SUMMARY_FIELDS = [
    ["final_eval_return", "final eval return (greedy)"], ["final_eval_success", "final eval success (greedy)"],
    ["final_eval_sampled_return", "final eval return (sampled)"], ["final_eval_sampled_success", "final eval success (sampled)"],
    ["frames_to_0_9", "frames to return 0.9"], ["teacher_accuracy_start", "teacher accuracy at start"],
    ["teacher_accuracy_end", "teacher accuracy at end"], ["llm_calls", "LLM calls"], ["wall_s", "wall time (s)"], ["fps", "fps"],
  ];

  // An attempt that deleted stored events (it started over, or resumed from a checkpoint and
  // forgot the points after it): what this page shows may be gone, so it loads again.
  let rewoundAttempt = state.rewound_attempt;

  function showState(run) {
    if (run.rewound_attempt !== rewoundAttempt) {
      if (lastSeq > 0) { window.location.reload(); return; }
      rewoundAttempt = run.rewound_attempt;
    }
    state = run;
    const status = $("status");
    status.textContent = run.status + (run.stop_requested && !run.final ? " (stopping)" : "")
      + (run.no_task ? " · waiting: no task (the broker was down; it is sent again once the broker answers)" : "");
    status.className = "status status-" + run.status;
    const total = run.total_timesteps || 0;
    $("progress").value = total ? Math.min(1, run.timesteps / total) : 0;
    $("progress-text").textContent = run.timesteps + " / " + total + " frames";
    $("fps").textContent = run.fps ? run.fps.toFixed(0) + " fps" : "";
    $("eta").textContent = run.status === "running" && run.eta_s !== null ? "ETA " + formatDuration(run.eta_s) : "";
    $("stop-button").disabled = run.final || run.stop_requested || $("stop-button").dataset.locked === "1";
    const resume = $("resume-form");  // only the owner and team admins have one
    if (resume) resume.hidden = !(run.status === "interrupted" || run.status === "failed");
    $("teacher-fault").hidden = !run.teacher_fault;
    $("teacher-fault-text").textContent = run.teacher_fault || "";
    const error = $("error");
    error.hidden = !run.error;
    error.textContent = run.error || "";
    const summary = $("summary");
    summary.replaceChildren();
    summary.hidden = !run.summary;
    if (run.summary) {
      for (const [key, label] of SUMMARY_FIELDS) {
        const dt = document.createElement("dt");
        dt.textContent = label;
        const dd = document.createElement("dd");
        const value = run.summary[key];
        dd.textContent = value === null || value === undefined ? "–" : typeof value === "number" && !Number.isInteger(value) ? value.toFixed(3) : String(value);
        summary.append(dt, dd);
      }
    }
  }

  // --- socket ------------------------------------------------------------------------------

  function setConnection(text, cls) {
    const el = $("connection");
    el.textContent = text;
    el.className = "connection " + (cls || "");
  }

  function requestBackfill() {
    backfillSentAt = Date.now();
    socket.send(JSON.stringify({ type: "backfill", last_seq: lastSeq }));
  }

  function connect() {
    const scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
    socket = new WebSocket(scheme + window.location.host + "/ws/runs/" + runId + "/");
    socket.addEventListener("open", () => {
      setConnection("catching up…", "");
      requestBackfill();
    });
    socket.addEventListener("message", (msg) => {
      const message = JSON.parse(msg.data);
      if (message.type === "events") applyEvents(message.events);
      else if (message.type === "history") plotHistory(message);
      else if (message.type === "run") {
        showState(message.run);
        if (message.run.final) flushPlot(); // the last points, with the status that says it ended
        if (message.backfill) {
          backfillSentAt = null;
          retryDelayMs = RETRY_MIN_MS;
          if (message.more) { requestBackfill(); return; } // the next page, at once
          flushPlot();
          complete = message.run.final;
          setConnection("live", "ok");
        }
      } else if (message.type === "frame") receiveFrame(message.event);
    });
    socket.addEventListener("close", (e) => {
      backfillSentAt = null;
      if (e.code === 4401 || e.code === 4403) {
        setConnection(e.code === 4401 ? "logged out: reload the page" : "not allowed", "bad");
        return;
      }
      setConnection("reconnecting…", "bad");
      window.setTimeout(connect, retryDelayMs * (0.5 + Math.random() / 2));
      retryDelayMs = Math.min(retryDelayMs * 2, RETRY_MAX_MS);
    });
  }

  window.setInterval(() => {
    if (socket.readyState !== WebSocket.OPEN) return;
    if (backfillSentAt === null) {
      if (!complete) requestBackfill();
    } else if (Date.now() - backfillSentAt > BACKFILL_TIMEOUT_MS) {
      socket.close(); // its close event reconnects
    }
  }, RESYNC_MS);

  // Stop without leaving the page; the form still works without JavaScript.
  $("stop-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const form = e.currentTarget;
    $("stop-button").disabled = true;
    fetch(form.action, {
      method: "POST",
      headers: { "X-CSRFToken": form.querySelector("[name=csrfmiddlewaretoken]").value, Accept: "application/json" },
      credentials: "same-origin",
    }).then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
      .then((body) => showState(body.run))
      .catch(() => { $("stop-button").disabled = false; });
  });

  showState(state);
  connect();
})();
