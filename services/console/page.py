# ruff: noqa: E501  (the page is HTML and JavaScript: long lines are theirs)
"""The console's single page: plain HTML and JavaScript, no build step and nothing loaded from elsewhere.

Everything shown is inserted with ``textContent`` (event fields are data, never markup).
"""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Stratus console</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 1.5rem; color: #222; }
table { border-collapse: collapse; width: 100%; margin-bottom: 1rem; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid #ddd; vertical-align: top; }
tr.incident { cursor: pointer; }
tr.incident:hover { background: #f4f6fa; }
pre { background: #f6f6f6; padding: .5rem; overflow-x: auto; margin: .2rem 0; }
.kind { font-family: monospace; white-space: nowrap; }
#auth { margin-bottom: 1rem; }
.muted { color: #777; }
</style>
</head>
<body>
<h1>Stratus</h1>
<div id="auth">
  <label>Bearer token <input id="token" type="password" size="40"></label>
  <button id="save">Use</button> <span id="status" class="muted"></span>
</div>
<p id="decision"></p>
<h2>Pending approvals</h2>
<table id="approvals"><thead><tr><th>incident</th><th>scope</th><th>transaction</th><th>writes</th>
<th>decide by</th><th></th></tr></thead><tbody></tbody></table>
<h2>Incidents</h2>
<table id="incidents"><thead><tr><th>incident</th><th>scope</th><th>opened</th><th>b</th><th>state</th>
<th>outcome</th><th>attempts</th><th>visible mu</th></tr></thead><tbody></tbody></table>
<h2 id="timeline-title">Timeline</h2>
<p id="paths" class="muted"></p>
<table id="timeline"><thead><tr><th>time</th><th>event</th><th>what happened</th></tr></thead><tbody></tbody></table>
<script>
"use strict";
const $ = (id) => document.getElementById(id);
let controller = null;
function token() { return sessionStorage.getItem("stratus-token") || ""; }
function headers() { const t = token(); return t ? { Authorization: "Bearer " + t } : {}; }
function cell(row, text) { const td = document.createElement("td"); td.textContent = text; row.appendChild(td); return td; }
async function getJson(path) {
  const r = await fetch(path, { headers: headers() });
  if (!r.ok) { $("status").textContent = path + ": HTTP " + r.status; throw new Error(String(r.status)); }
  $("status").textContent = "connected";
  return r.json();
}
function describe(e) {
  switch (e.kind) {
    case "incident_opened": return "opened on " + e.scope + ": b = " + e.baseline + "; " + (e.evidence || []).slice(0, 3).join("; ");
    case "diagnosis": return "diagnosis: " + (e.localisation || []).join(", ") + " " + (e.summary || "");
    case "state_changed": return e.previous + " -> " + e.state + (e.reason ? ": " + e.reason : "");
    case "checkpointed": return "checkpoint " + e.tx_id + ": mu = " + e.severity.mu;
    case "action_executed": return "#" + e.seq + " " + e.action.verb + " " + [e.action.kind, e.action.name].filter(Boolean).join("/") + " -> " + (e.ok ? "ok" : "failed") + ", mu = " + e.mu_after;
    case "transaction_started": return "transaction " + e.tx_id + " started" + (e.worker ? " by " + e.worker : "");
    case "transaction_ended": return "transaction " + e.tx_id + " " + e.outcome + ": " + e.actions + " write(s)";
    case "transaction_decided": return e.decision.toUpperCase() + " " + e.tx_id + ": mu " + e.mu_pre + " -> " + e.mu_post + " (" + e.reason + ")";
    case "undo_completed": return "undo of " + e.tx_id + ": " + e.undone + " undone, " + ((e.divergences || []).length ? e.divergences.length + " divergence(s)" : "digest restored");
    case "plan_proposed": return "plan of " + e.tx_id + ": " + e.actions.length + " write(s), dry-run, none executed";
    case "approval_requested": return "plan of " + e.tx_id + " waits for approval until " + e.deadline;
    case "approval_decided": return "plan of " + e.tx_id + (e.approved ? " approved" : " denied") + (e.by ? " by " + e.by : "");
    case "incident_closed": return "closed: " + e.outcome + " after " + e.attempts + " attempt(s); visible mu " + JSON.stringify(e.visible_mu);
    default: return e.kind;
  }
}
const hidden = {};
let visible = [];
function showPaths() {
  const parts = Object.keys(hidden).map((tx) => "hidden " + tx + ": " + hidden[tx].join(" -> "));
  if (visible.length) parts.unshift("visible: " + visible.join(" -> "));
  $("paths").textContent = parts.join(" | ");
}
function addEvent(e) {
  const row = document.createElement("tr");
  row.dataset.kind = e.kind;
  cell(row, (e.ts || "").slice(11, 19));
  cell(row, e.kind).className = "kind";
  const what = cell(row, describe(e));
  for (const planned of (Array.isArray(e.actions) ? e.actions : [])) {
    const pre = document.createElement("pre");
    const undo = (planned.undo || []).map((u) => u.verb + " " + [u.kind, u.name].filter(Boolean).join("/")).join("; ");
    pre.textContent = planned.action.verb + " " + [planned.action.kind, planned.action.name].filter(Boolean).join("/") + "  (undo: " + (undo || "nothing to restore") + ")\\n" + (planned.diff || "");
    what.appendChild(pre);
  }
  $("timeline").tBodies[0].appendChild(row);
  if (e.kind === "checkpointed") { hidden[e.tx_id] = [e.severity.mu]; }
  if (e.kind === "action_executed" && hidden[e.tx_id]) { hidden[e.tx_id].push(e.mu_after); }
  if (e.kind === "incident_closed") { visible = e.visible_mu; }
  showPaths();
}
async function follow(id) {
  if (controller) controller.abort();
  controller = new AbortController();
  $("timeline").tBodies[0].replaceChildren();
  for (const k of Object.keys(hidden)) delete hidden[k];
  visible = [];
  showPaths();
  $("timeline-title").textContent = "Timeline of " + id;
  const r = await fetch("/api/incidents/" + encodeURIComponent(id) + "/events", { headers: headers(), signal: controller.signal });
  if (!r.ok) { $("status").textContent = "timeline: HTTP " + r.status; return; }
  const reader = r.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\\n\\n")) >= 0) {
      const chunk = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      if (!chunk.startsWith("data: ")) continue;
      try { addEvent(JSON.parse(chunk.slice(6))); } catch (err) { $("status").textContent = "timeline: an event could not be shown: " + err; }
    }
  }
}
async function refresh() {
  try {
    const list = await getJson("/api/incidents");
    const body = $("incidents").tBodies[0];
    body.replaceChildren();
    for (const s of list.slice().reverse()) {
      const row = document.createElement("tr");
      row.className = "incident";
      row.dataset.incident = s.incident_id;
      for (const v of [s.incident_id, s.scope, String(s.opened_at).slice(0, 19), s.baseline, s.state, s.outcome || "-", s.attempts, (s.visible_mu || []).join(" -> ")]) cell(row, String(v));
      row.addEventListener("click", () => follow(s.incident_id));
      body.appendChild(row);
    }
    const conf = await getJson("/api/config");
    const pending = await getJson("/api/approvals");
    const abody = $("approvals").tBodies[0];
    abody.replaceChildren();
    for (const a of pending) {
      const row = document.createElement("tr");
      for (const v of [a.incident_id, a.scope, a.tx_id, a.actions.length, a.deadline]) cell(row, String(v));
      const actions = cell(row, "");
      if (conf.approvals) {
        for (const verdict of ["approve", "deny"]) {
          const b = document.createElement("button");
          b.textContent = verdict;
          b.dataset.verdict = verdict;
          b.addEventListener("click", () => decide(a, verdict));
          actions.appendChild(b);
        }
      }
      row.addEventListener("click", (ev) => { if (ev.target.tagName !== "BUTTON") follow(a.incident_id); });
      abody.appendChild(row);
    }
  } catch (err) { /* the status line says why */ }
}
async function decide(a, verdict) {
  const r = await fetch("/api/approvals/" + encodeURIComponent(a.incident_id) + "/" + verdict, {
    method: "POST", headers: { ...headers(), "Content-Type": "application/json" }, body: JSON.stringify({ tx_id: a.tx_id }),
  });
  let why = "";
  if (!r.ok) { try { why = ": " + (await r.json()).error; } catch (err) { /* no JSON body */ } }
  $("decision").textContent = verdict + " " + a.tx_id + ": HTTP " + r.status + why;
  refresh();
}
$("save").addEventListener("click", () => { sessionStorage.setItem("stratus-token", $("token").value); refresh(); });
$("token").value = token();
refresh();
setInterval(refresh, 5000);
</script>
</body>
</html>
"""
