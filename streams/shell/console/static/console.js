// deposit-sentinel console. Plain JavaScript, no build step, nothing fetched from elsewhere.
// Every value from an alert reaches the page as text (textContent, SVG text nodes), never as
// markup: summaries and addresses come from events, that is from outside.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const FACETS = ["typology", "severity", "action", "mode", "status"];
const PAGE = 200;
const state = { rows: [], selected: 0, shown: PAGE, reload: null };

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") node.className = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value);
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function csrf() {
  const found = document.cookie.split("; ").find((c) => c.startsWith("sentinel_console_csrf="));
  return found ? found.split("=")[1] : "";
}

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
    body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  if (response.status === 401) { location.href = "/login"; throw new Error("signed out"); }
  const data = await response.json();
  if (!response.ok) throw new Error(data.detail || data.error || response.statusText);
  return data;
}

function short(text, keep) {
  const value = String(text);
  return value.length > 2 * keep + 1 ? value.slice(0, keep) + "\u2026" + value.slice(-keep) : value;
}

function badge(kind, value) {
  return el("span", { class: `badge ${kind}-${value}` }, value.replace("_", " "));
}

function main(...children) {
  const node = document.getElementById("main");
  node.replaceChildren(...children);
  return node;
}

function setUser(user) {
  document.getElementById("user").textContent = user ? `signed in as ${user}` : "";
}

// ---- the queue -----------------------------------------------------------------------------

function queryFromPage() {
  const params = new URLSearchParams(location.search);
  const query = {};
  for (const name of [...FACETS, "account", "order"]) if (params.get(name)) query[name] = params.get(name);
  return query;
}

function setQuery(query) {
  const params = new URLSearchParams(query);
  history.replaceState(null, "", params.toString() ? `/?${params}` : "/");
  state.shown = PAGE;
  showQueue();
}

async function showQueue() {
  const query = queryFromPage();
  const params = new URLSearchParams({ ...query, limit: String(state.shown) });
  const data = await api(`/api/queue?${params}`);
  setUser(data.user);
  document.getElementById("totals").textContent =
    `${data.alerts} alerts` + (data.unreadable ? `, ${data.unreadable} unreadable records` : "") +
    (data.unreadable_dispositions ? `, ${data.unreadable_dispositions} unreadable dispositions` : "");
  state.rows = data.rows;
  state.selected = Math.min(state.selected, Math.max(0, data.rows.length - 1));
  const filters = el("form", { class: "filters", id: "filters", onsubmit: (e) => e.preventDefault() });
  for (const name of FACETS) {
    const select = el("select", { name, id: `filter-${name}`, onchange: () => setQuery(formQuery()) });
    select.append(el("option", { value: "" }, `${name}: any`));
    for (const value of data.facets[name]) {
      const option = el("option", { value }, `${value.replace("_", " ")} (${data.counts[name][value] || 0})`);
      if (query[name] === value) option.selected = true;
      select.append(option);
    }
    filters.append(el("label", {}, select));
  }
  const account = el("input", { name: "account", id: "filter-account", placeholder: "account", value: query.account || "" });
  account.addEventListener("change", () => setQuery(formQuery()));
  const order = el("select", { name: "order", id: "filter-order", onchange: () => setQuery(formQuery()) },
    el("option", { value: "" }, "most severe first"), el("option", { value: "time" }, "newest first"));
  if (query.order === "time") order.value = "time";
  filters.append(el("label", {}, account), el("label", {}, order),
    el("button", { type: "button", onclick: () => setQuery({}) }, "clear"));

  const body = el("tbody", { id: "queue-rows" });
  data.rows.forEach((row, index) => body.append(queueRow(row, index)));
  const table = el("table", { class: "queue" },
    el("thead", {}, el("tr", {}, ...["severity", "status", "typology", "action", "account", "summary", "event time"]
      .map((h) => el("th", {}, h)))), body);
  const more = data.total > data.rows.length
    ? el("button", { id: "more", onclick: () => { state.shown += PAGE; showQueue(); } },
      `show ${Math.min(PAGE, data.total - data.rows.length)} more of ${data.total - data.rows.length}`)
    : null;
  main(filters, el("p", { class: "muted", id: "shown" }, `${data.total} match, ${data.rows.length} shown`), table, more);
  highlight();
  document.body.dataset.shown = `${location.search}#${data.rows.length}`;  // what is on screen (for tests)
}

function formQuery() {
  const query = {};
  for (const field of document.getElementById("filters").elements) {
    if (field.name && field.value) query[field.name] = field.value;
  }
  return query;
}

function queueRow(row, index) {
  const link = el("a", { href: `/alerts/${encodeURIComponent(row.alert_id)}` }, row.summary);
  const tr = el("tr", { class: `row mode-${row.mode}`, "data-alert-id": row.alert_id, "data-index": String(index) },
    el("td", {}, badge("severity", row.severity)),
    el("td", {}, badge("status", row.status)),
    el("td", {}, row.typology),
    el("td", {}, row.mode === "shadow" ? `${row.action} (shadow)` : row.action),
    el("td", {}, el("a", { href: `/accounts/${encodeURIComponent(row.account_id)}` }, row.account_id)),
    el("td", { class: "summary" }, link),
    el("td", { class: "time" }, row.event_time));
  tr.addEventListener("click", (event) => { if (event.target.tagName !== "A") { state.selected = index; highlight(); } });
  return tr;
}

function highlight() {
  document.querySelectorAll("#queue-rows tr").forEach((tr, index) => {
    tr.classList.toggle("selected", index === state.selected);
    if (index === state.selected) tr.scrollIntoView({ block: "nearest" });
  });
}

// ---- one alert -----------------------------------------------------------------------------

async function showAlert(alertId) {
  const data = await api(`/api/alerts/${encodeURIComponent(alertId)}`);
  setUser(data.user);
  const alert = data.alert;
  const evidence = alert.evidence || {};
  const facts = el("dl", { class: "facts" });
  for (const [name, value] of [["rule", `${alert.rule_id}@${alert.rule_version}`], ["account", alert.account_id],
    ["typology", alert.typology], ["severity", alert.severity], ["action", `${alert.action} (${alert.mode})`],
    ["event time", alert.event_time], ["detected", alert.detected_at], ["events", (alert.event_ids || []).join(", ")],
    ["alert id", alert.alert_id], ["ruleset", alert.ruleset_version]]) {
    facts.append(el("dt", {}, name), el("dd", {}, value === undefined ? "" : value));
  }
  const sections = [
    el("p", {}, el("a", { href: "/" }, "\u2190 queue"), " \u00b7 ",
      el("a", { href: `/accounts/${encodeURIComponent(alert.account_id)}` }, `account ${alert.account_id}`)),
    el("h1", { id: "summary" }, alert.summary),
    el("p", {}, badge("severity", alert.severity), " ", badge("status", data.status)),
    facts,
  ];
  if (evidence.exposure) sections.push(el("h2", {}, "Path of funds"), exposurePath(evidence.exposure, alert));
  if (evidence.window) sections.push(el("h2", {}, "Window"), windowTimeline(evidence.window, alert));
  if (evidence.sequence) sections.push(el("h2", {}, "Sequence"), sequenceTimeline(evidence.sequence));
  for (const match of evidence.matches || []) sections.push(listEntry(match));
  if (evidence.exposure) sections.push(listEntry({ ...evidence.exposure, address: evidence.exposure.seed_address }));
  if (evidence.event) sections.push(el("h2", {}, "Event"), keyValues(evidence.event));
  sections.push(triage(alert, data), allowlistForm(alert, data));
  sections.push(el("details", {}, el("summary", {}, "evidence as JSON"),
    el("pre", { class: "json" }, JSON.stringify(evidence, null, 2))));
  main(...sections);
}

function keyValues(object) {
  const list = el("dl", { class: "facts" });
  for (const [key, value] of Object.entries(object)) {
    list.append(el("dt", {}, key), el("dd", {}, Array.isArray(value) ? value.join(", ") : String(value)));
  }
  return list;
}

function listEntry(match) {
  const list = match.list || {};
  const entry = match.entry || {};
  return el("section", { class: "entry" },
    el("h2", {}, "List entry"),
    el("p", {}, el("strong", {}, entry.label || "an unnamed holder"), ` on ${list.name || list.id}`),
    keyValues({ address: match.address, source: list.source, "list version": list.version, category: list.category,
      ...Object.fromEntries(Object.entries(entry).filter(([k]) => k !== "label" && k !== "address")) }));
}

function exposurePath(exposure, alert) {
  const hops = exposure.path || [];
  const nodes = [exposure.seed_address, ...hops.map((hop) => hop.to)];
  const gap = 230, top = 80, width = 120 + gap * nodes.length;
  const drawing = svg("svg", { class: "path", id: "exposure-path", width, height: 200, viewBox: `0 0 ${width} 200`,
    role: "img", "aria-label": `path of funds over ${hops.length} hop(s)` });
  const x = (i) => 70 + i * gap;
  hops.forEach((hop, i) => {
    drawing.append(svg("line", { x1: x(i) + 14, y1: top, x2: x(i + 1) - 14, y2: top, class: "edge" }));
    const edge = svg("g", { class: "transfer", "data-tx": hop.tx_hash });
    const middle = (x(i) + x(i + 1)) / 2;
    const moved = hop.amount ? `${hop.amount} ${hop.asset}` : "amount not kept";
    edge.append(svg("text", { x: middle, y: top - 28, "text-anchor": "middle", class: "amount" }, moved));
    edge.append(svg("text", { x: middle, y: top - 12, "text-anchor": "middle" }, `hop ${i + 1}: tx ${short(hop.tx_hash, 6)}`));
    edge.append(svg("text", { x: middle, y: top + 22, "text-anchor": "middle", class: "muted" }, hop.time));
    edge.append(svg("title", {}, `${hop.from} \u2192 ${hop.to}\n${moved}\n${hop.tx_hash}\n${hop.time}`));
    drawing.append(edge);
  });
  const account = nodes.length;
  drawing.append(svg("line", { x1: x(account - 1) + 14, y1: top, x2: x(account) - 14, y2: top, class: "edge deposit" }));
  const event = (alert.evidence || {}).event || {};
  drawing.append(svg("text", { x: (x(account - 1) + x(account)) / 2, y: top - 12, "text-anchor": "middle" },
    `${event.type || "event"} ${event.amount || ""} ${event.asset || ""}`));
  nodes.forEach((address, i) => {
    const node = svg("g", { class: i === 0 ? "node seed" : "node", "data-address": address });
    node.append(svg("circle", { cx: x(i), cy: top, r: 14 }));
    node.append(svg("text", { x: x(i), y: top + 48, "text-anchor": "middle" }, short(address, 6)));
    node.append(svg("text", { x: x(i), y: top + 66, "text-anchor": "middle", class: "muted" },
      i === 0 ? `seed: ${exposure.entity}` : `hop ${i}`));
    node.append(svg("title", {}, address));
    drawing.append(node);
  });
  const exchange = svg("g", { class: "node account", "data-account": alert.account_id });
  exchange.append(svg("rect", { x: x(account) - 14, y: top - 14, width: 28, height: 28 }));
  exchange.append(svg("text", { x: x(account), y: top + 48, "text-anchor": "middle" }, `account ${alert.account_id}`));
  drawing.append(exchange);
  return el("figure", { class: "figure" }, drawing,
    el("figcaption", {}, `${exposure.hops} hop(s) of at most ${exposure.max_hops} from ${exposure.entity}; ` +
      `share traced to the seed ${exposure.share}; exposed since ${exposure.exposed_since}`));
}

function timeline(marks, caption) {
  const times = marks.map((m) => Date.parse(m.time));
  const low = Math.min(...times), high = Math.max(...times), span = Math.max(1, high - low);
  const width = 760, drawing = svg("svg", { class: "timeline", width, height: 120, viewBox: `0 0 ${width} 120` });
  const x = (t) => 40 + ((t - low) / span) * (width - 80);
  drawing.append(svg("line", { x1: 40, y1: 60, x2: width - 40, y2: 60, class: "axis" }));
  marks.forEach((mark, i) => {
    const at = x(times[i]);
    drawing.append(svg("circle", { cx: at, cy: 60, r: 6, class: mark.kind }));
    drawing.append(svg("text", { x: at, y: i % 2 ? 90 : 40, "text-anchor": "middle" }, mark.label));
    drawing.append(svg("text", { x: at, y: i % 2 ? 106 : 24, "text-anchor": "middle", class: "muted" }, mark.time));
  });
  return el("figure", { class: "figure" }, drawing, el("figcaption", {}, caption));
}

function windowTimeline(window, alert) {
  const marks = [{ time: window.start, label: "window's first event", kind: "start" },
    { time: window.end, label: `this event: ${window.aggregate} = ${window.value}`, kind: "hit" }];
  return timeline(marks, `${window.events} event(s) within ${window.timespan}; ${window.aggregate}` +
    `${window.field ? ` of ${window.field}` : ""} = ${window.value}, threshold ${window.condition}`);
}

function sequenceTimeline(sequence) {
  const start = sequence.start || {};
  const marks = [{ time: start.time, label: `start ${start.event_id}: ${sequence.start_value}`, kind: "start" },
    { time: sequence.completed, label: `total ${sequence.total} (${sequence.ratio})`, kind: "hit" }];
  return timeline(marks, `completed within ${sequence.maxspan}: ${sequence.field} reached ${sequence.ratio} ` +
    `of the start, threshold ${sequence.reaches}`);
}

function triage(alert, data) {
  const history = el("ol", { class: "history", id: "history" });
  for (const d of data.history) history.append(el("li", {}, `${d.at} ${d.by}: ${d.status.replace("_", " ")}`, d.note ? ` \u2014 ${d.note}` : ""));
  const status = el("select", { name: "status", id: "disposition-status" },
    ...["confirmed", "false_positive", "escalated", "open"].map((s) => el("option", { value: s }, s.replace("_", " "))));
  const note = el("textarea", { name: "note", id: "disposition-note", rows: 2, placeholder: "why (kept in the audit trail)" });
  const result = el("p", { class: "result", id: "disposition-result", role: "status" });
  const form = el("form", { id: "disposition", class: "action" }, el("h2", {}, "Disposition"), history,
    el("label", {}, "status ", status), el("label", {}, "note ", note), el("button", { type: "submit" }, "Save"), result);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api(`/api/alerts/${encodeURIComponent(alert.alert_id)}/disposition`, { status: status.value, note: note.value });
      await showAlert(alert.alert_id);
      document.getElementById("disposition-result").textContent = "saved";
    } catch (error) { result.textContent = `not saved: ${error.message}`; result.classList.add("error"); }
  });
  return form;
}

function allowlistForm(alert, data) {
  const result = el("p", { class: "result", id: "allowlist-result", role: "status" });
  const subject = el("select", { name: "subject", id: "allowlist-subject" },
    el("option", { value: "account" }, `account ${alert.account_id}`),
    ...data.addresses.map((a) => el("option", { value: `address:${a}` }, `address ${a}`)));
  const scope = el("select", { name: "scope", id: "allowlist-scope" },
    el("option", { value: "rule" }, `rule ${alert.rule_id}`), el("option", { value: "typology" }, `typology ${alert.typology}`));
  const until = el("input", { name: "until", id: "allowlist-until", value: "30d" });
  const reason = el("input", { name: "reason", id: "allowlist-reason", placeholder: "why (kept in the audit trail)" });
  const form = el("form", { id: "allowlist", class: "action" }, el("h2", {}, "Allowlist from this alert"),
    data.overridable === false ? el("p", { class: "muted" }, "This rule is not overridable: the console will refuse.") : null,
    el("label", {}, "covers ", scope), el("label", {}, "for ", subject), el("label", {}, "until ", until),
    el("label", {}, "reason ", reason), el("button", { type: "submit" }, "Add entry"), result);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const [kind, address] = subject.value.split(/:(.*)/s);
    try {
      const entry = await api(`/api/alerts/${encodeURIComponent(alert.alert_id)}/allowlist`,
        { scope: scope.value, subject: kind, address, until: until.value, reason: reason.value });
      result.textContent = `added ${entry.entry_id}: ${entry.scope}, until ${entry.until}`;
      result.classList.remove("error");
    } catch (error) { result.textContent = `refused: ${error.message}`; result.classList.add("error"); }
  });
  return form;
}

// ---- one account ---------------------------------------------------------------------------

async function showAccount(accountId) {
  const data = await api(`/api/accounts/${encodeURIComponent(accountId)}`);
  setUser(data.user);
  const body = el("tbody", { id: "queue-rows" });
  data.rows.forEach((row, index) => {
    const tr = queueRow(row, index);
    const d = row.decided;
    tr.append(el("td", { class: "decided" }, d ? `${d.status.replace("_", " ")} by ${d.by} at ${d.at}${d.note ? `: ${d.note}` : ""}` : ""));
    body.append(tr);
  });
  state.rows = data.rows;
  main(el("p", {}, el("a", { href: "/" }, "\u2190 queue")), el("h1", {}, `Account ${accountId}`),
    el("p", { class: "muted" }, `${data.rows.length} alert(s), newest first`),
    el("table", { class: "queue" }, el("thead", {}, el("tr", {}, ...["severity", "status", "typology", "action", "account",
      "summary", "event time", "last decision"].map((h) => el("th", {}, h)))), body));
  highlight();
}

// ---- routing, live updates, keys -----------------------------------------------------------

function route() {
  const path = location.pathname;
  if (path.startsWith("/alerts/")) return showAlert(decodeURIComponent(path.slice(8)));
  if (path.startsWith("/accounts/")) return showAccount(decodeURIComponent(path.slice(10)));
  return showQueue();
}

function listen() {
  const live = document.getElementById("live");
  const source = new EventSource("/api/updates");
  // Close it when leaving the page: a browser holds at most six connections to one server, and
  // a stream left open by each page visited would soon leave none for the next page.
  window.addEventListener("pagehide", () => source.close());
  source.onopen = () => { live.className = "live on"; };
  source.onerror = () => { live.className = "live off"; };
  source.onmessage = () => {
    // Redraw the list once a burst is read (a page shows what the server's queue holds).
    if (location.pathname === "/" || location.pathname.startsWith("/accounts/")) {
      clearTimeout(state.reload);
      state.reload = setTimeout(route, 150);
    }
  };
}

document.addEventListener("keydown", (event) => {
  if (["INPUT", "TEXTAREA", "SELECT"].includes(event.target.tagName)) {
    if (event.key === "Escape") event.target.blur();
    return;
  }
  const rows = document.querySelectorAll("#queue-rows tr");
  if (event.key === "j" && rows.length) { state.selected = Math.min(rows.length - 1, state.selected + 1); highlight(); }
  else if (event.key === "k" && rows.length) { state.selected = Math.max(0, state.selected - 1); highlight(); }
  else if (event.key === "Enter" && rows[state.selected]) {
    location.href = `/alerts/${encodeURIComponent(rows[state.selected].dataset.alertId)}`;
  } else if (event.key === "/" && document.getElementById("filter-account")) {
    event.preventDefault(); document.getElementById("filter-account").focus();
  } else if (event.key === "u") { location.href = "/"; }
});

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("logout").addEventListener("click", async () => {
    await fetch("/logout", { method: "POST", headers: { "X-CSRF-Token": csrf() } });
    location.href = "/login";
  });
  route().catch((error) => main(el("p", { class: "error" }, `could not load: ${error.message}`)));
  listen();
});
