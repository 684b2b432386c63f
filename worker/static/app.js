// The bertstream page: classify a text now, and watch the stream's results
// and the models (primary, shadow, how they compare).
"use strict";
const $ = (id) => document.getElementById(id);
const POLL_MS = 3000;

function headers() {
  const h = { "Content-Type": "application/json" };
  const token = localStorage.getItem("bertstream-token");
  if (token) h.Authorization = "Bearer " + token;
  return h;
}

// Fetches JSON; an API refusal becomes an Error carrying its message and status.
async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers() });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error((body.error && body.error.message) || response.statusText);
    error.status = response.status;
    throw error;
  }
  return body;
}

function showError(error) {
  if (error.status === 401) $("token").hidden = false;
  $("error").textContent = error.message;
  $("error").hidden = false;
}

function el(tag, cls, text) {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  if (text !== undefined) node.textContent = text;
  return node;
}

async function classify() {
  const text = $("text").value.trim();
  if (!text) return;
  const token = $("token").value.trim();
  if (token) localStorage.setItem("bertstream-token", token);
  $("classify").disabled = true;
  $("error").hidden = true;
  const started = performance.now();
  try {
    const body = await api("/v1/classify", { method: "POST", body: JSON.stringify({ text }) });
    const result = body.results[0];
    $("label").textContent = result.label;
    $("score").textContent = (result.score * 100).toFixed(1) + "%";
    const bars = $("bars");
    bars.replaceChildren();
    for (const label of body.labels) {
      const p = result.scores[label];
      const row = el("div", "bar" + (label === result.label ? " best" : ""));
      row.dataset.label = label;
      const track = el("div", "track");
      const fill = el("div", "fill");
      fill.style.width = (p * 100).toFixed(1) + "%";
      track.append(fill);
      row.append(el("span", "name", label), track, el("span", "prob", (p * 100).toFixed(1) + "%"));
      bars.append(row);
    }
    $("result").hidden = false;
    const total = performance.now() - started;
    $("took").textContent = `用时 · took ${total.toFixed(0)} ms (server ${body.took_ms.toFixed(1)} ms)`;
    $("model").textContent = body.model;
  } catch (error) {
    showError(error);
  } finally {
    $("classify").disabled = false;
  }
}

async function refreshLatest() {
  const label = $("filter").value;
  const query = "?limit=20" + (label ? "&label=" + encodeURIComponent(label) : "");
  const page = await api("/v1/reviews" + query);
  const list = $("latest");
  list.replaceChildren();
  for (const r of page.items) {
    const item = el("li");
    item.title = `${r.id} · ${r.classified_at}`;
    item.append(el("span", "tag", r.label), el("span", "text", r.text), el("span", "muted", (r.score * 100).toFixed(0) + "%"));
    list.append(item);
  }
  if (!page.items.length) list.append(el("li", "muted", "还没有结果 · nothing classified yet"));
}

async function refreshStats() {
  const stats = await api("/v1/stats");
  $("model").textContent = stats.model;
  const counts = $("counts");
  counts.replaceChildren();
  for (const label of stats.labels) counts.append(el("span", "", `${label}: ${stats.counts[label] || 0}`));
  $("rate").textContent = `· ${stats.per_second.toFixed(1)}/s · lag ${stats.consumer_lag}`;
  const filter = $("filter");
  if (filter.options.length === 1) for (const label of stats.labels) filter.append(new Option(label, label));
}

function modelLine(role, m, extra) {
  const item = el("li");
  item.dataset.role = role;
  item.append(el("span", "tag", role), el("span", "text", m.id), el("span", "muted", `${m.scored} scored${extra}`));
  return item;
}

// The loaded models and, with a shadow, how it compares with the primary on
// the reviews both scored: agreement and the confusion matrix (rows: primary).
async function refreshModels() {
  const models = await api("/v1/models");
  const list = $("models");
  list.replaceChildren(modelLine("primary", models.primary, ""));
  if (!models.shadow) {
    list.append(el("li", "muted", "没有影子模型 · no shadow model (SHADOW_MODEL_DIR)"));
    $("compare").hidden = true;
    return;
  }
  list.append(modelLine("shadow", models.shadow, ` · sample ${(models.shadow_sample * 100).toFixed(0)}%`));
  const q = `?a=${encodeURIComponent(models.primary.id)}&b=${encodeURIComponent(models.shadow.id)}`;
  const c = await api("/v1/models/compare" + q);
  $("agreement").textContent = c.reviews
    ? `一致率 · agreement ${(c.agreement * 100).toFixed(1)}% over ${c.reviews} reviews`
    : "no review scored by both yet";
  const labels = models.primary.labels;
  const table = $("confusion");
  table.replaceChildren();
  const head = el("tr");
  head.append(el("th", "muted", "primary \\ shadow"), ...labels.map((l) => el("th", "", l)));
  table.append(head);
  for (const a of labels) {
    const row = el("tr");
    row.append(el("th", "", a));
    for (const b of labels) row.append(el("td", a === b ? "same" : "", String((c.confusion[a] || {})[b] || 0)));
    table.append(row);
  }
  $("compare").hidden = false;
}

async function poll() {
  try {
    await Promise.all([refreshLatest(), refreshStats(), refreshModels()]);
  } catch (error) {
    if (error.status === 401) $("token").hidden = false;
  }
  setTimeout(poll, POLL_MS);
}

$("classify").addEventListener("click", classify);
$("text").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) classify(); });
$("filter").addEventListener("change", () => refreshLatest().catch(showError));
poll();
