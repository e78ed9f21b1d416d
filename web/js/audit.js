// Security review page: sign in, check the audit chain, search events, read one session's
// story as a timeline, and export everything as JSON lines.
//
// The staff token lives in memory only, inside web/js/api.js (never web storage, never a
// URL): a reload signs the reviewer out. The broker decides who may read the log; the page only
// reports its answer.

import { ApiError, createApi } from "./api.js";

const PAGE_SIZE = 200;
const TIMELINE_LIMIT = 5000; // the API's maximum page

const $ = (id) => document.getElementById(id);

const api = createApi();
const search = { params: null, lastSeq: 0, shown: 0 };

api.onUnauthorized(() => signOut("Your sign-in has expired or was revoked. Please sign in again."));

/** GET the export as a blob, with the token in the Authorization header (never in a URL). */
async function fetchExport() {
  let response;
  try {
    response = await fetch("/api/v1/audit/export", {
      headers: { Accept: "application/x-ndjson", Authorization: `Bearer ${api.token}` },
      credentials: "omit",
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, "unreachable", "the broker cannot be reached");
  }
  if (!response.ok) {
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (response.status === 401) {
      signOut("Your sign-in has expired or was revoked. Please sign in again.");
    }
    throw new ApiError(response.status, body?.error ?? "http_error", body?.message ?? "");
  }
  return response.blob();
}

// --- labels -------------------------------------------------------------------------------

const PERMISSION_VERBS = {
  view: "see the screen",
  control: "control mouse and keyboard",
  clipboard: "use the clipboard",
  files: "transfer files",
  system_info: "read system information",
};

function verb(permission) {
  return PERMISSION_VERBS[permission] ?? String(permission);
}

/** Names of engineers as they joined this session (pid -> "Name (L2)"). */
function namesFrom(events) {
  const names = new Map();
  for (const event of events) {
    if (event.action === "session.participant_joined") {
      const d = event.details;
      names.set(d.pid, d.level ? `${d.display_name} (${d.level})` : d.display_name);
    }
  }
  return names;
}

function who(names, pid) {
  return names.get(pid) ?? pid ?? "someone";
}

function by(event) {
  return event.actor_role === "customer" || event.actor_role === "agent"
    ? `the customer (${event.actor_role === "agent" ? "support program" : "web page"})`
    : event.actor;
}

/** ": reason", unless the reason is empty or only repeats the default `plain`. */
function because(reason, plain) {
  return reason && reason !== plain ? `: ${reason}` : "";
}

// One sentence per action name; an unknown action is shown as is.
const LABELS = {
  "session.created": (e) => `Session created by ${e.actor}`,
  "session.customer_joined": () => "Customer opened the session with the code",
  "session.join_rejected": (e) => `Session code refused (${e.details.reason})`,
  "session.agent_connected": () => "Customer's computer connected (support program)",
  "session.agent_resumed": () => "Customer's computer reconnected",
  "session.agent_disconnected": () => "Customer's computer disconnected",
  // Joining is the request to view: the customer is asked at once (docs/protocol.md).
  "session.participant_joined": (e, n) => `${who(n, e.details.pid)} joined and asked to see the screen`,
  "session.participant_left": (e, n) => `${who(n, e.details.pid)} left`,
  "session.participant_disconnected": (e, n) => `${who(n, e.details.pid)} lost the connection`,
  "session.participant_resumed": (e, n) => `${who(n, e.details.pid)} reconnected`,
  "session.participant_dropped": (e, n) =>
    `${who(n, e.details.pid)} removed: did not come back in time`,
  "session.consent_requested": (e, n) =>
    `Consent asked: may ${who(n, e.details.pid)} ${verb(e.details.permission)}?` +
    (e.details.reason ? ` Reason: ${e.details.reason}` : ""),
  "session.consent_granted": (e, n) =>
    `Consent given: ${who(n, e.details.pid)} may ${verb(e.details.permission)}`,
  "session.consent_refused": (e, n) =>
    `Consent refused: ${who(n, e.details.pid)} may not ${verb(e.details.permission)}`,
  "session.consent_revoked": (e, n) =>
    `Consent withdrawn by ${by(e)}: ${who(n, e.details.pid)} may no longer ${verb(e.details.permission)}`,
  "session.consent_released": (e, n) =>
    `${who(n, e.details.pid)} gave back the right to ${verb(e.details.permission)}`,
  "session.control_granted": (e, n) => `Control granted to ${who(n, e.details.pid)}`,
  "session.control_revoked": (e, n) =>
    `Control revoked from ${who(n, e.details.pid)} by ${by(e)}${because(e.details.reason, "revoked")}`,
  "session.invited": (e) => {
    const d = e.details;
    const user = d.target_user ?? d.user;
    const level = d.target_level ?? d.level;
    const target = user ? user : level ? `any ${level} engineer` : "someone";
    return `Escalation: ${d.by ?? e.actor} invited ${target}. Reason: ${d.reason}`;
  },
  "session.invitation_accepted": (e) => {
    const d = e.details;
    const target = d.target_user ? "their invitation" : `the invitation to any ${d.target_level} engineer`;
    return `${e.actor} joined on ${target} from ${d.invited_by}. Reason: ${d.reason}`;
  },
  "session.paused": (e) => `Sharing paused by ${by(e)}`,
  "session.resumed": (e) => `Sharing resumed by ${by(e)}`,
  "session.ended": (e) =>
    `Session ended by ${e.details.by === "customer" || e.details.by === "agent" ? by(e) : (e.details.by ?? e.actor)}` +
    because(e.details.reason, `ended by ${e.details.by}`),
  "session.chat": (e) => `Chat message sent (encrypted, ${e.details.size} bytes)`,
  "relay.input_dropped": (e) => `Input refused from ${e.actor} (${e.details.count} frames)`,
  "case.created": (e) => `Case opened by ${e.actor}`,
  "case.status_changed": (e) => `Case status ${e.details.from} → ${e.details.to}`,
  "case.first_response": (e) => `First response (${e.details.met ? "within" : "after"} the SLA)`,
  "case.contact_attempt": (e) => `Contact attempt by ${e.details.channel}`,
  "case.customer_not_solved": () => "Customer says: still not solved",
  "auth.login": (e) => `${e.actor} signed in`,
  "auth.login_failed": (e) => `Failed sign-in as ${e.actor}`,
  "audit.searched": (e) => `${e.actor} searched the audit log`,
  "audit.exported": (e) => `${e.actor} exported the audit log`,
  "user.created": (e) => `User ${e.details.user} created (${e.details.role})`,
  "user.disabled": (e) => `User disabled by ${e.actor}`,
  "user.enabled": (e) => `User enabled by ${e.actor}`,
};

function label(event, names) {
  const make = Object.hasOwn(LABELS, event.action) ? LABELS[event.action] : null;
  if (make === null) {
    return event.action;
  }
  try {
    return make(event, names);
  } catch {
    return event.action;
  }
}

function formatTime(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) {
    return String(iso);
  }
  return new Intl.DateTimeFormat(undefined, {
    dateStyle: "medium",
    timeStyle: "medium",
  }).format(date);
}

function detailsText(details) {
  if (details === null || typeof details !== "object") {
    return "";
  }
  return Object.entries(details)
    .map(([key, value]) => `${key}=${typeof value === "object" ? JSON.stringify(value) : value}`)
    .join(", ");
}

/** A datetime-local value ("2026-11-23T10:30") as ISO 8601 with this browser's offset. */
function localToIso(value) {
  if (!value) {
    return null;
  }
  const date = new Date(value); // a form without offset is read as local time
  if (Number.isNaN(date.getTime())) {
    return null;
  }
  const pad = (n) => String(n).padStart(2, "0");
  const offset = -date.getTimezoneOffset();
  const sign = offset >= 0 ? "+" : "-";
  const abs = Math.abs(offset);
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
    `T${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}` +
    `${sign}${pad(Math.floor(abs / 60))}:${pad(abs % 60)}`
  );
}

function showError(el, text) {
  el.hidden = !text;
  el.textContent = text || "";
}

function describe(err) {
  if (err.status === 403) {
    return "Your account is not allowed to do this.";
  }
  if (err.status === 422) {
    return `The search was not accepted: ${err.message}`;
  }
  return err.message || `request failed (${err.status})`;
}

// --- sign in and out ----------------------------------------------------------------------

async function onLogin(event) {
  event.preventDefault();
  const error = $("login-error");
  const submit = $("login-submit");
  showError(error, "");
  submit.disabled = true;
  const username = $("username").value.trim();
  const password = $("password").value;
  $("password").value = "";
  try {
    await api.login(username, password);
  } catch (err) {
    if (err.status === 401) {
      showError(error, "Wrong user name or password.");
    } else if (err.status === 429) {
      showError(error, "Too many sign-in attempts. Wait a few minutes and try again.");
    } else {
      showError(error, describe(err));
    }
    return;
  } finally {
    submit.disabled = false;
  }
  await enterReview();
}

async function enterReview() {
  const user = api.user;
  $("login-view").hidden = true;
  $("whoami").hidden = false;
  $("whoami-text").textContent = `Signed in as ${user.display_name} (${user.name}, ${user.role})`;
  // The broker's answer decides: a role without read_audit gets 403 here.
  const allowed = await verify();
  if (!allowed) {
    return;
  }
  $("review-view").hidden = false;
}

function signOut(message) {
  api.logout();
  $("review-view").hidden = true;
  $("denied-view").hidden = true;
  $("whoami").hidden = true;
  $("login-view").hidden = false;
  $("results-body").replaceChildren();
  $("results").hidden = true;
  $("timeline").replaceChildren();
  showError($("login-error"), message || "");
}

function deny(err) {
  $("review-view").hidden = true;
  $("denied-view").hidden = false;
  $("denied-text").textContent =
    `Your account ${api.user?.name ?? ""} (role: ${api.user?.role ?? "unknown"}) is not allowed ` +
    `to review the audit log. Only the security and admin roles may. (${err.message})`;
}

// --- chain verification -------------------------------------------------------------------

async function verify() {
  const status = $("verify-status");
  status.dataset.state = "checking";
  status.textContent = "Checking the chain…";
  let result;
  try {
    result = await api.get("/api/v1/audit/verify");
  } catch (err) {
    if (err.status === 403) {
      deny(err);
      return false;
    }
    status.dataset.state = "error";
    status.textContent = `Could not verify: ${describe(err)}`;
    return err.status !== 401;
  }
  if (result.ok) {
    status.dataset.state = "intact";
    status.textContent = `Chain intact, ${result.checked} events`;
  } else {
    status.dataset.state = "broken";
    status.textContent =
      result.first_bad_seq === null
        ? `Chain broken: ${result.reason}`
        : `Chain broken at event #${result.first_bad_seq}: ${result.reason}`;
  }
  $("verify-head").textContent = result.head_hash ? `Head hash ${result.head_hash}` : "";
  return true;
}

// --- search -------------------------------------------------------------------------------

function searchParams() {
  const params = new URLSearchParams();
  for (const [name, id] of [["case", "f-case"], ["session", "f-session"], ["actor", "f-actor"]]) {
    const value = $(id).value.trim();
    if (value) {
      params.set(name, value);
    }
  }
  for (const [name, id] of [["since", "f-since"], ["until", "f-until"]]) {
    const iso = localToIso($(id).value);
    if (iso) {
      params.set(name, iso);
    }
  }
  params.set("limit", String(PAGE_SIZE));
  return params;
}

async function onSearch(event) {
  event.preventDefault();
  search.params = searchParams();
  search.lastSeq = 0;
  search.shown = 0;
  $("results-body").replaceChildren();
  await loadPage();
}

async function loadPage() {
  const error = $("search-error");
  showError(error, "");
  const params = new URLSearchParams(search.params);
  if (search.lastSeq > 0) {
    params.set("after_seq", String(search.lastSeq));
  }
  let events;
  try {
    events = (await api.get(`/api/v1/audit?${params}`)).events;
  } catch (err) {
    showError(error, describe(err));
    return;
  }
  const names = namesFrom(events);
  const body = $("results-body");
  for (const event of events) {
    body.append(resultRow(event, names));
  }
  search.shown += events.length;
  if (events.length > 0) {
    search.lastSeq = events[events.length - 1].seq;
  }
  $("results").hidden = search.shown === 0;
  $("more-btn").hidden = events.length < PAGE_SIZE;
  $("search-summary").textContent =
    search.shown === 0 ? "No events match." : `${search.shown} events shown.`;
}

function td(row, text, className) {
  const cell = document.createElement("td");
  cell.textContent = text ?? "";
  if (className) {
    cell.className = className;
  }
  row.append(cell);
  return cell;
}

function resultRow(event, names) {
  const row = document.createElement("tr");
  row.dataset.seq = String(event.seq);
  row.dataset.action = event.action;
  td(row, String(event.seq), "num");
  const time = td(row, formatTime(event.at));
  time.title = event.at;
  td(row, event.actor_role ? `${event.actor} (${event.actor_role})` : event.actor);
  const what = td(row, label(event, names));
  const code = document.createElement("code");
  code.textContent = event.action;
  what.append(document.createElement("br"), code);
  td(row, event.case, "nowrap");
  const sessionCell = td(row, "");
  if (event.session) {
    const link = document.createElement("button");
    link.type = "button";
    link.className = "link mono";
    link.textContent = event.session;
    link.title = "Show this session's timeline";
    link.addEventListener("click", () => {
      $("t-session").value = event.session;
      showTimeline(event.session);
    });
    sessionCell.append(link);
  }
  td(row, detailsText(event.details), "details");
  return row;
}

// --- timeline -----------------------------------------------------------------------------

async function onTimeline(event) {
  event.preventDefault();
  const session = $("t-session").value.trim();
  if (session) {
    await showTimeline(session);
  }
}

async function showTimeline(session) {
  const list = $("timeline");
  const error = $("timeline-error");
  showError(error, "");
  list.replaceChildren();
  const params = new URLSearchParams({ session, limit: String(TIMELINE_LIMIT) });
  let events;
  try {
    events = (await api.get(`/api/v1/audit?${params}`)).events;
  } catch (err) {
    showError(error, describe(err));
    return;
  }
  events.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : a.seq - b.seq));
  const names = namesFrom(events);
  for (const item of events) {
    const li = document.createElement("li");
    li.dataset.action = item.action;
    li.dataset.seq = String(item.seq);
    const time = document.createElement("time");
    time.dateTime = item.at;
    time.textContent = formatTime(item.at);
    const text = document.createElement("span");
    text.className = "what";
    text.textContent = label(item, names);
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = `#${item.seq} · ${item.actor}${item.actor_role ? ` (${item.actor_role})` : ""}`;
    li.append(time, text, meta);
    list.append(li);
  }
  $("timeline-summary").textContent =
    events.length === 0
      ? `No events for session ${session}.`
      : `${events.length} events for session ${session}, oldest first.`;
  list.scrollIntoView({ block: "nearest" });
}

// --- export -------------------------------------------------------------------------------

async function onExport() {
  const status = $("export-status");
  const button = $("export-btn");
  button.disabled = true;
  status.textContent = "Exporting…";
  try {
    // fetch with the Authorization header, then hand the browser a blob: the token never
    // appears in a URL, a history entry or a server log.
    const blob = await fetchExport();
    const text = await blob.text();
    const lines = text.split("\n").filter((line) => line.length > 0).length;
    const url = URL.createObjectURL(new Blob([text], { type: "application/x-ndjson" }));
    const link = document.createElement("a");
    link.href = url;
    link.download = `audit-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, "")}.jsonl`;
    link.hidden = true;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    status.textContent = `Exported ${lines} events.`;
  } catch (err) {
    status.textContent = `Export failed: ${describe(err)}`;
  } finally {
    button.disabled = false;
  }
}

// --- start-up -----------------------------------------------------------------------------

function start() {
  $("login-form").addEventListener("submit", onLogin);
  $("logout-btn").addEventListener("click", () => signOut(""));
  $("verify-btn").addEventListener("click", () => verify());
  $("search-form").addEventListener("submit", onSearch);
  $("search-form").addEventListener("reset", () => {
    $("results-body").replaceChildren();
    $("results").hidden = true;
    $("more-btn").hidden = true;
    $("search-summary").textContent = "";
  });
  $("more-btn").addEventListener("click", () => loadPage());
  $("timeline-form").addEventListener("submit", onTimeline);
  $("export-btn").addEventListener("click", onExport);
  document.body.dataset.ready = "true";
}

start();
