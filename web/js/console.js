// The engineer console: sign in, the queue, opening cases and sessions, and the session
// workspace (remote screen, control, read-back words, chat, participants, invitations).
//
// The staff token lives only in the api.js closure and in the WebSocket subprotocol the viewer
// offers; nothing is written to localStorage, sessionStorage or cookies. Every value that comes
// from the broker is shown with textContent, never parsed as HTML. The queue is refreshed by
// polling (QUEUE_REFRESH_MS) rather than pushed: it is a few small JSON requests, and the broker
// has no queue stream to subscribe to.

import { ApiError, createApi } from "./api.js";
import { InputCapture } from "./input.js";
import { Screen } from "./screen.js";
import { AGENT_SLOT, typeName } from "./framing.js";
import { Viewer } from "./viewer.js";

const QUEUE_REFRESH_MS = 3000;
const READOUT_MS = 500;
const OPEN_CASE_STATES = "open,in_progress,awaiting_customer";
const MAX_NOTICES = 50;
const MAX_CHAT_LINES = 200;
const END_CONFIRM_MS = 5000;

const STATUS_TEXT = {
  connecting: "connecting",
  waiting: "waiting for the customer's agent",
  "awaiting consent": "waiting for the customer's consent to view",
  observing: "viewing",
  "control requested": "viewing",
  controlling: "viewing",
  paused: "paused by the customer",
  ended: "session ended",
  disconnected: "disconnected",
  reconnecting: "reconnecting",
};

const $ = (id) => document.getElementById(id);
const api = createApi();

/** The open session, or null while the queue is shown. */
let live = null;
let queueTimer = null;
let lastCreated = null;
/** The broker's plans and severities (GET /api/v1/plans), loaded at sign-in. */
let catalogue = null;
/** The case shown in the detail card, or null. */
let detailNumber = null;

// --- small helpers -------------------------------------------------------------------------

function show(id, visible) {
  $(id).hidden = !visible;
}

function message(error) {
  if (error instanceof ApiError) return error.message;
  return error?.message ?? String(error);
}

function cell(row, text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  row.append(td);
  return td;
}

/** "2 - severe": the support plans' words for a severity, from the broker. */
function severityLabel(severity) {
  const known = catalogue?.severities.find((item) => item.severity === severity);
  return known ? `${severity} - ${known.name}` : String(severity);
}

function severityCell(row, severity) {
  const td = document.createElement("td");
  const badge = document.createElement("span");
  badge.className = "sev";
  badge.dataset.sev = String(severity);
  badge.textContent = String(severity);
  badge.title = severityLabel(severity);
  td.append(badge);
  row.append(td);
}

function duration(seconds) {
  const minutes = Math.round(Math.abs(seconds) / 60);
  if (minutes < 120) return `${minutes} min`;
  const hours = Math.round(minutes / 60);
  return hours < 48 ? `${hours} h` : `${Math.round(hours / 24)} days`;
}

/**
 * The broker's SLA view of a case, in words. The console computes nothing: the broker says
 * whether the first response was met or is breached, and how long is left (as of `sla_as_of`),
 * so a case answered on time never turns red because its due time has passed.
 */
function slaText(item) {
  const due = new Date(item.response_due);
  const clock = due.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
  if (item.first_response_met === true) return { key: "met", text: `answered on time (due ${clock})` };
  if (item.first_response_met === false) return { key: "late", text: `answered late (due ${clock})` };
  const left = item.response_seconds_left;
  if (left === null || left === undefined) {
    return item.breached
      ? { key: "late", text: `not answered, was due ${clock}` }
      : { key: "stopped", text: `not needed (due ${clock})` };
  }
  if (item.breached) return { key: "overdue", text: `overdue by ${duration(left)} (due ${clock})` };
  return { key: "running", text: `due in ${duration(left)} (${clock})` };
}

function dueCell(row, item) {
  const { key, text } = slaText(item);
  const td = cell(row, text, key === "overdue" || key === "late" ? "overdue" : "");
  td.dataset.sla = key;
}

function option(value, text, selected = false) {
  const item = document.createElement("option");
  item.value = String(value);
  item.textContent = text;
  // defaultSelected, so that form.reset() after opening a case comes back to the default.
  item.defaultSelected = selected;
  item.selected = selected;
  return item;
}

function planLabel(plan) {
  if (plan.coverage === "24x7") return `${plan.name} (24x7)`;
  return `${plan.name} (business hours, ${plan.timezone})`;
}

/** Fill the severity and plan choices from the broker's configured plans. */
async function loadCatalogue() {
  catalogue = await api.plans();
  const severities = catalogue.severities.map((item) =>
    option(item.severity, severityLabel(item.severity), item.severity === catalogue.default_severity),
  );
  $("case-severity").replaceChildren(...severities);
  $("case-plan").replaceChildren(...catalogue.plans.map((plan, index) => option(plan.name, planLabel(plan), index === 0)));
  $("terms-severity").replaceChildren(...catalogue.severities.map((item) => option(item.severity, severityLabel(item.severity))));
  $("terms-plan").replaceChildren(...catalogue.plans.map((plan) => option(plan.name, planLabel(plan))));
}

function buttonCell(row, label, onClick) {
  const td = document.createElement("td");
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = label;
  button.addEventListener("click", onClick);
  td.append(button);
  row.append(td);
  return button;
}

// --- sign in -------------------------------------------------------------------------------

function signedOut(reason = "") {
  stopQueue();
  closeCaseDetail();
  if (live) leaveSession();
  api.logout();
  show("whoami", false);
  show("queue-view", false);
  show("session-view", false);
  show("login-view", true);
  $("login-error").textContent = reason;
  show("login-error", Boolean(reason));
  $("password").value = "";
}

async function onLogin(event) {
  event.preventDefault();
  $("login-submit").disabled = true;
  show("login-error", false);
  try {
    const { user } = await api.login($("username").value.trim(), $("password").value);
    $("password").value = "";
    $("whoami-text").textContent = `${user.display_name} (${user.level ?? user.role})`;
    show("whoami", true);
    show("login-view", false);
    await loadCatalogue();
    showQueue();
  } catch (error) {
    $("login-error").textContent = message(error);
    show("login-error", true);
  } finally {
    $("login-submit").disabled = false;
  }
}

// --- queue ---------------------------------------------------------------------------------

function showQueue() {
  show("session-view", false);
  show("queue-view", true);
  refreshQueue();
  stopQueue();
  queueTimer = setInterval(refreshQueue, QUEUE_REFRESH_MS);
}

function stopQueue() {
  if (queueTimer !== null) clearInterval(queueTimer);
  queueTimer = null;
}

async function refreshQueue() {
  if (!api.loggedIn) return;
  try {
    const [sessions, cases] = await Promise.all([api.queue("waiting,active"), api.cases(OPEN_CASE_STATES)]);
    renderSessions(sessions.sessions);
    renderCases(cases.cases);
    if (detailNumber !== null) await showCaseDetail(detailNumber);
    $("queue-status").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    $("queue-status").textContent = `not updated: ${message(error)}`;
  }
}

/** "Rita Reyes (L2)", or "nobody" while no engineer has the session in hand. */
function holderText(holder) {
  if (!holder) return "nobody";
  return `${holder.display_name}${holder.level ? ` (${holder.level})` : ""}`;
}

/**
 * The open invitations of a queue row: those naming the signed-in engineer ("you") or their
 * level first, as the broker marked them (`for_me`), then the others. Joining accepts them.
 */
function invitationsCell(row, invitations) {
  const td = cell(row, "", "invited");
  const mine = invitations.filter((item) => item.for_me);
  const others = invitations.filter((item) => !item.for_me);
  for (const item of [...mine, ...others]) {
    const line = document.createElement("div");
    line.className = item.for_me ? "invitation mine" : "invitation";
    line.dataset.forMe = item.for_me ?? "";
    const who = document.createElement("strong");
    if (item.for_me === "user") who.textContent = "invited: you";
    else if (item.for_me === "level") who.textContent = `invited: your level (${item.level})`;
    else who.textContent = `invited: ${item.user ?? `any ${item.level}`}`;
    const why = document.createElement("span");
    why.className = "reason";
    why.textContent = ` \u2013 ${item.reason}`;
    const by = document.createElement("span");
    by.className = "hint";
    by.textContent = ` (by ${item.by}, ${new Date(item.at).toLocaleTimeString([], { timeStyle: "short" })})`;
    line.append(who, why, by);
    td.append(line);
  }
  if (mine.length) row.classList.add("invited");
  row.dataset.invited = mine.map((item) => item.for_me).join(",");
}

function renderSessions(sessions) {
  const body = $("sessions-body");
  const rows = sessions.map((entry) => {
    const row = document.createElement("tr");
    row.dataset.session = entry.id;
    row.dataset.case = entry.case.number;
    severityCell(row, entry.case.severity);
    dueCell(row, entry.case);
    cell(row, entry.case.number, "nowrap");
    cell(row, `${entry.case.customer_name}, ${entry.case.company}`);
    // Who has the session in hand now (its creator, or whom it was handed over to).
    cell(row, holderText(entry.holder), "holder");
    cell(row, entry.state === "waiting" && !entry.code_used ? "waiting for the customer" : entry.state);
    invitationsCell(row, entry.invitations ?? []);
    buttonCell(row, "Join", () => joinSession(entry.id, entry.case.number));
    return row;
  });
  body.replaceChildren(...rows);
  show("sessions-empty", rows.length === 0);
}

function renderCases(cases) {
  const body = $("cases-body");
  const rows = cases.map((item) => {
    const row = document.createElement("tr");
    row.dataset.case = item.number;
    severityCell(row, item.severity);
    dueCell(row, item);
    const numberCell = cell(row, "", "nowrap");
    const details = document.createElement("button");
    details.type = "button";
    details.className = "link";
    details.textContent = item.number;
    details.title = "Details, the customer's answers, change or cancel";
    details.addEventListener("click", () => showCaseDetail(item.number));
    numberCell.append(details);
    cell(row, `${item.customer_name}, ${item.company}`);
    cell(row, `${item.product} ${item.serial_number}`);
    cell(row, item.status.replace("_", " "));
    const button = buttonCell(row, "New session", async () => {
      button.disabled = true;
      try {
        await startSession(item.number);
      } catch (error) {
        $("queue-status").textContent = `could not start a session: ${message(error)}`;
      } finally {
        button.disabled = false;
      }
    });
    return row;
  });
  body.replaceChildren(...rows);
  show("cases-empty", rows.length === 0);
}

async function startSession(caseNumber) {
  const created = await api.createSession(caseNumber);
  lastCreated = created;
  $("created-case").textContent = created.case_number;
  $("created-code").textContent = created.code_display;
  $("created-link").textContent = created.join_link;
  const expires = new Date(created.code_expires_at);
  $("created-expiry").textContent = `valid once, until ${expires.toLocaleTimeString()}`;
  show("created", true);
  $("created").scrollIntoView({ block: "nearest" });
  refreshQueue();
}

async function onCreateCase(event) {
  event.preventDefault();
  const form = event.target;
  const data = new FormData(form);
  const fields = {};
  for (const name of ["customer_name", "company", "contact", "product", "serial_number", "plan"]) {
    fields[name] = String(data.get(name) ?? "").trim();
  }
  fields.severity = Number(data.get("severity"));
  const description = String(data.get("description") ?? "").trim();
  if (description) fields.description = description;
  $("case-submit").disabled = true;
  show("case-error", false);
  try {
    const created = await api.createCase(fields);
    if (data.get("with_session")) await startSession(created.number);
    else refreshQueue();
    form.reset();
  } catch (error) {
    $("case-error").textContent = message(error);
    show("case-error", true);
  } finally {
    $("case-submit").disabled = false;
  }
}

// --- case detail: the customer's answers, severity and plan, cancellation -------------------

async function showCaseDetail(number) {
  detailNumber = number;
  let item;
  try {
    item = await api.caseDetail(number);
  } catch (error) {
    $("detail-result").textContent = `not updated: ${message(error)}`;
    return;
  }
  if (detailNumber !== number) return;
  show("case-detail", true);
  $("d-number").textContent = item.number;
  $("d-customer").textContent = `${item.customer_name}, ${item.company} (${item.contact})`;
  $("d-product").textContent = `${item.product} ${item.serial_number}`;
  $("d-status").textContent = item.status.replace("_", " ");
  $("d-severity").textContent = severityLabel(item.severity);
  $("d-plan").textContent = item.plan;
  const sla = slaText(item);
  $("d-sla").textContent = sla.text;
  $("d-sla").dataset.sla = sla.key;
  $("d-sla").className = sla.key === "overdue" || sla.key === "late" ? "overdue" : "";
  const cancelled = item.cancellation;
  $("d-cancelled").textContent = cancelled
    ? `${new Date(cancelled.at).toLocaleString()} by ${cancelled.by}: ${cancelled.reason}`
    : "no";
  const answers = item.customer_feedback.map((answer) => {
    const row = document.createElement("li");
    row.dataset.solved = String(answer.solved);
    const when = document.createElement("time");
    when.textContent = new Date(answer.at).toLocaleString();
    const verdict = document.createElement("strong");
    verdict.textContent = answer.solved ? " solved" : " not solved";
    row.append(when, verdict);
    if (answer.comment) {
      const comment = document.createElement("q");
      comment.textContent = answer.comment;
      row.append(" ", comment);
    }
    return row;
  });
  $("d-feedback").replaceChildren(...answers);
  show("d-feedback-empty", answers.length === 0);
  const active = ["open", "in_progress", "awaiting_customer"].includes(item.status);
  show("terms-form", active);
  show("cancel-form", active);
  // A refresh must not undo a choice being made in the form.
  if (!$("terms-form").contains(document.activeElement)) {
    $("terms-severity").value = String(item.severity);
    $("terms-plan").value = item.plan;
  }
}

function closeCaseDetail() {
  detailNumber = null;
  show("case-detail", false);
  $("detail-result").textContent = "";
}

async function onChangeTerms(event) {
  event.preventDefault();
  if (detailNumber === null) return;
  const fields = {
    severity: Number($("terms-severity").value),
    plan: $("terms-plan").value,
    reason: $("terms-reason").value.trim(),
  };
  $("terms-btn").disabled = true;
  try {
    const item = await api.changeTerms(detailNumber, fields);
    $("detail-result").textContent = `Now ${severityLabel(item.severity)}, plan ${item.plan}; ${slaText(item).text}.`;
    $("terms-reason").value = "";
    $("terms-btn").blur();
    await showCaseDetail(detailNumber);
    refreshQueue();
  } catch (error) {
    $("detail-result").textContent = `Not changed: ${message(error)}`;
  } finally {
    $("terms-btn").disabled = false;
  }
}

async function onCancelCase(event) {
  event.preventDefault();
  if (detailNumber === null) return;
  $("cancel-btn").disabled = true;
  try {
    const item = await api.cancelCase(detailNumber, $("cancel-reason").value.trim());
    $("detail-result").textContent = `Case ${item.number} cancelled; its live sessions were ended.`;
    $("cancel-reason").value = "";
    await showCaseDetail(detailNumber);
    refreshQueue();
  } catch (error) {
    $("detail-result").textContent = `Not cancelled: ${message(error)}`;
  } finally {
    $("cancel-btn").disabled = false;
  }
}

// --- session workspace ---------------------------------------------------------------------

function note(text) {
  const item = document.createElement("li");
  const time = document.createElement("time");
  time.textContent = new Date().toLocaleTimeString();
  item.append(time, text);
  const list = $("notices");
  list.prepend(item);
  while (list.children.length > MAX_NOTICES) list.lastElementChild.remove();
}

async function joinSession(sessionId, caseNumber) {
  if (live) leaveSession();
  stopQueue();
  show("queue-view", false);
  show("session-view", true);
  $("s-case").textContent = caseNumber ?? "";
  $("s-case-info").textContent = "";
  if (caseNumber) showCaseInfo(caseNumber);
  $("chat-log").replaceChildren();
  $("notices").replaceChildren();
  $("people").replaceChildren();
  $("invite-result").textContent = "";

  const screen = new Screen($("screen"), $("overlay"));
  const viewer = new Viewer({ sessionId, token: api.token, screen });
  const input = new InputCapture($("screen"), screen, (events) => viewer.sendInput(events), () => viewer.mayInput);
  input.onError = (error) => note(`input not sent: ${message(error)}`);
  const readout = setInterval(() => renderReadout(screen), READOUT_MS);
  live = { sessionId, caseNumber, viewer, screen, input, readout, lastStatus: null, lastControl: null };

  viewer.addEventListener("change", () => render());
  viewer.addEventListener("notice", (event) => note(event.detail.message));
  viewer.addEventListener("chat", (event) => addChat(event.detail));
  viewer.addEventListener("closed", (event) => note(`connection closed: ${event.detail.reason} (${event.detail.code})`));
  $("screen").addEventListener("painted", onPainted);
  try {
    await viewer.connect();
  } catch (error) {
    note(`cannot join: ${message(error)}`);
  }
  render();
}

/** Who and what the session is about, next to the case number. */
async function showCaseInfo(caseNumber) {
  try {
    const item = await api.get(`/api/v1/cases/${encodeURIComponent(caseNumber)}`);
    if (live?.caseNumber !== caseNumber) return;
    $("s-case-info").textContent =
      `severity ${item.severity} \u00b7 ${item.customer_name}, ${item.company} \u00b7 ` +
      `${item.product} ${item.serial_number}`;
  } catch {
    // The bar shows the case number anyway; the details are a convenience.
  }
}

function leaveSession() {
  if (!live) return;
  disarmEnd();
  live.input.detach();
  live.viewer.close();
  clearInterval(live.readout);
  $("screen").removeEventListener("painted", onPainted);
  live = null;
}

function onPainted() {
  if (!live) return;
  if (live.screen.hasPicture && live.viewer.status !== "paused") show("stage-note", false);
  $("screen").dataset.updates = String(live.screen.updatesPainted);
}

/** Said when the customer page itself shares the screen (docs/protocol.md, "Browser source"). */
const VIEW_ONLY_TEXT =
  "Shared from the browser: view only \u2014 ask the customer to install the agent to let you control";

function controlState(viewer) {
  if (viewer.source === "browser") return { key: "browser", text: VIEW_ONLY_TEXT };
  if (viewer.status === "controlling") return { key: "controlling", text: "you have control" };
  if (viewer.status === "control requested") return { key: "requested", text: "control requested: waiting for the customer" };
  const holder = viewer.controllerSlot;
  if (holder !== null && holder !== viewer.slot) {
    const who = viewer.participants.get(holder)?.display_name ?? `slot ${holder}`;
    return { key: "other", text: `${who} has control` };
  }
  return { key: "none", text: "view only" };
}

function render() {
  if (!live) return;
  const { viewer } = live;
  const status = viewer.status;
  const control = controlState(viewer);
  if (viewer.welcome) $("s-case").textContent = viewer.welcome.case_number;

  $("s-status").dataset.status = status;
  $("s-status").textContent = STATUS_TEXT[status] ?? status;
  $("s-control").dataset.control = control.key;
  $("s-control").textContent = control.text;
  $("stage").dataset.control = control.key;
  const statusText = STATUS_TEXT[status] ?? status;
  if (statusText !== live.lastStatus) note(`session: ${statusText}`);
  if (control.key !== live.lastControl && live.lastControl !== null) note(`control: ${control.text}`);
  live.lastStatus = statusText;
  live.lastControl = control.key;

  // A browser source cannot be controlled: nothing to ask for (the broker refuses it too).
  const observing = status === "observing" && viewer.source !== "browser";
  $("control-btn").disabled = !observing;
  $("control-btn").title = viewer.source === "browser" ? VIEW_ONLY_TEXT : "";
  show("control-btn", status !== "controlling");
  show("control-reason", observing || status === "control requested");
  $("control-reason").disabled = !observing;
  $("control-btn").textContent = status === "control requested" ? "Waiting for consent\u2026" : "Request control";
  show("release-btn", status === "controlling");
  $("end-btn").disabled = status === "ended";
  $("chat-send").disabled = viewer.pairwise === null;

  if (!live.screen.hasPicture) {
    show("stage-note", true);
    $("stage-note").textContent =
      status === "ended"
        ? "The session has ended."
        : status === "waiting"
          ? "Waiting for the customer to start the support program."
          : status === "disconnected"
            ? "Disconnected from the broker."
            : "Waiting for the customer's consent to see the screen.";
  } else if (status === "paused") {
    show("stage-note", true);
    $("stage-note").textContent = "The customer paused sharing.";
  } else {
    show("stage-note", false);
  }

  if (viewer.readback) {
    $("rb-words").textContent = viewer.readback.words.join(" ");
    $("rb-digits").textContent = `digits ${viewer.readback.digits.slice(0, 3)} ${viewer.readback.digits.slice(3)}`;
  } else {
    $("rb-words").textContent = "\u2013";
    $("rb-digits").textContent = "";
  }
  renderPeople(viewer);
}

const AGENT_PHASES = new Set(["pending_consent", "observing", "controlling", "paused"]);

/**
 * Everyone in the session: us (the broker sends no `join` for ourselves), the customer's agent
 * while the session's phase says it is connected, and the other engineers from their `join`.
 */
function renderPeople(viewer) {
  const people = new Map(viewer.participants);
  if (viewer.slot !== null && api.user) {
    people.set(viewer.slot, { slot: viewer.slot, display_name: api.user.display_name, level: api.user.level });
  }
  if (AGENT_PHASES.has(viewer.phase) && !people.has(AGENT_SLOT)) {
    people.set(AGENT_SLOT, { slot: AGENT_SLOT, display_name: "Customer's computer", level: null });
  } else if (!AGENT_PHASES.has(viewer.phase)) {
    people.delete(AGENT_SLOT);
  }
  const items = [...people.values()]
    .sort((a, b) => a.slot - b.slot)
    .map((join) => {
      const item = document.createElement("li");
      item.dataset.slot = String(join.slot);
      const level = join.level ? ` (${join.level})` : "";
      item.textContent = `${join.display_name}${level}`;
      const tags = [];
      const engineer = join.slot !== AGENT_SLOT && join.role !== "customer";
      if (join.slot === AGENT_SLOT) tags.push(join.source === "browser" ? "customer's browser, view only" : "customer's agent");
      if (join.role === "customer") tags.push("web page, chat");
      if (join.slot === viewer.slot) tags.push("you");
      if (join.slot === viewer.controllerSlot) tags.push("in control");
      else if (engineer && viewer.viewingSlots.includes(join.slot)) tags.push("viewing");
      else if (engineer) tags.push("waiting for consent");
      for (const tag of tags) {
        const span = document.createElement("span");
        span.className = "tag";
        span.textContent = tag;
        item.append(span);
      }
      return item;
    });
  $("people").replaceChildren(...items);
}

function renderReadout(screen) {
  const latency = screen.latencyMs === null ? "\u2013" : screen.latencyMs.toFixed(0);
  const readout = $("s-readout");
  readout.textContent = `${screen.fps} fps \u00b7 ${latency} ms`;
  // Details for whoever diagnoses a blank or frozen picture: key epoch, refusals, last problem.
  const viewer = live?.viewer;
  if (viewer) {
    const problem = viewer.errors.at(-1) ?? screen.lastError ?? "none";
    const received = [...viewer.framesReceived].map(([type, n]) => `${typeName(type)} ${n}`).join(", ");
    readout.title =
      `updates painted per second / time from arrival to paint. ` +
      `Key epoch ${viewer.epoch}; frames received: ${received || "none"}; ` +
      `${screen.updatesPainted} updates painted, ${viewer.framesDropped} frames refused, ` +
      `${viewer.keyframesAsked} keyframes asked for a missing picture; ` +
      `last problem: ${problem}`;
  }
}

function addChat({ from, text, own }) {
  const item = document.createElement("li");
  item.className = own ? "own" : "theirs";
  const who = document.createElement("span");
  who.className = "from";
  who.textContent = own ? "You:" : `${from}:`;
  item.append(who, text);
  const log = $("chat-log");
  log.append(item);
  while (log.children.length > MAX_CHAT_LINES) log.firstElementChild.remove();
  log.scrollTop = log.scrollHeight;
}

async function onChat(event) {
  event.preventDefault();
  const text = $("chat-input").value.trim();
  if (!live || !text) return;
  try {
    if (await live.viewer.sendChat(text)) $("chat-input").value = "";
    else note("chat not sent: the customer has not let you in yet");
  } catch (error) {
    note(`chat not sent: ${message(error)}`);
  }
}

async function onInvite(event) {
  event.preventDefault();
  if (!live) return;
  const target = $("invite-target").value;
  const fields = { reason: $("invite-reason").value.trim() };
  if (target === "user") fields.user = $("invite-user").value.trim();
  else fields.level = target.slice("level:".length);
  $("invite-btn").disabled = true;
  try {
    const invitation = await api.invite(live.sessionId, fields);
    const who = invitation.user ?? `any ${invitation.level} engineer`;
    $("invite-result").textContent = `Invited ${who}. The customer will be asked before they see anything.`;
    note(`invited ${who}: ${invitation.reason}`);
    $("invite-reason").value = "";
  } catch (error) {
    $("invite-result").textContent = `Not invited: ${message(error)}`;
  } finally {
    $("invite-btn").disabled = false;
  }
}

/** Ending is for everyone in the session, so it takes a second click within a few seconds. */
async function onEnd() {
  if (!live) return;
  const button = $("end-btn");
  if (!button.dataset.armed) {
    button.dataset.armed = "true";
    button.textContent = "Click again to end";
    live.disarm = setTimeout(() => disarmEnd(), END_CONFIRM_MS);
    return;
  }
  disarmEnd();
  const { sessionId } = live;
  button.disabled = true;
  try {
    await api.endSession(sessionId, "ended by the engineer");
    note("you ended the session");
  } catch (error) {
    note(`could not end the session: ${message(error)}`);
    $("end-btn").disabled = false;
  }
}

function disarmEnd() {
  const button = $("end-btn");
  delete button.dataset.armed;
  button.textContent = "End session";
  if (live?.disarm) clearTimeout(live.disarm);
}

// --- wiring --------------------------------------------------------------------------------

function init() {
  $("login-form").addEventListener("submit", onLogin);
  $("logout-btn").addEventListener("click", () => signedOut());
  api.onUnauthorized(() => signedOut("Your sign-in expired. Please sign in again."));
  api.onRenewed((token) => live?.viewer.renew(token));
  $("case-form").addEventListener("submit", onCreateCase);
  $("detail-close").addEventListener("click", closeCaseDetail);
  $("terms-form").addEventListener("submit", onChangeTerms);
  $("cancel-form").addEventListener("submit", onCancelCase);
  $("created-join").addEventListener("click", () => {
    if (lastCreated) joinSession(lastCreated.id, lastCreated.case_number);
  });
  $("leave-btn").addEventListener("click", () => {
    leaveSession();
    showQueue();
  });
  $("control-btn").addEventListener("click", () => {
    // The customer's prompt shows this reason; an empty one says that none was given.
    const reason = $("control-reason").value.trim();
    if (!live?.viewer.requestControl(reason)) return;
    note(reason ? `control requested: ${reason}` : "control requested (no reason given)");
    $("control-reason").value = "";
  });
  $("release-btn").addEventListener("click", () => {
    if (live?.viewer.releaseControl()) note("control released");
  });
  $("end-btn").addEventListener("click", onEnd);
  $("chat-form").addEventListener("submit", onChat);
  $("invite-form").addEventListener("submit", onInvite);
  $("invite-target").addEventListener("change", () => show("invite-user-label", $("invite-target").value === "user"));
  // Leaving the page closes the socket cleanly, so the others see "left", not "disconnected".
  window.addEventListener("pagehide", () => leaveSession());
  document.body.dataset.ready = "true";
}

init();
