// The customer page: exchange the session code for this session's tokens, show who is asking
// and how to start the agent, follow the session live, and let the customer pause, take back
// control or end it at any moment.
//
// Everything secret stays in this module's memory: the code is read from the URL fragment and
// wiped from the address bar at once, and tokens never go into a URL or into web storage.
//
// Chat: the page makes one ephemeral key pair per page load (WebCrypto, X25519 or P-256, never
// exported or stored), announces its public key from the customer slot on every (re)connect,
// and seals its chat to the agent on a pairwise channel (docs/protocol.md, "The customer
// page's chat channel"). The agent passes it on to the engineers and seals their answers to
// this page; the broker relays ciphertext only. The page never holds the screen's group key.

import { KeyPair, PairwiseChannel, PublicKey, Side } from "./e2e.js";
import { FrameType } from "./framing.js";
import { CONSENT_REASON_MAX, cleanText } from "./messages.js";
import {
  detectLanguage,
  formatTime,
  getLanguage,
  joinList,
  onLanguageChange,
  setLanguage,
  t,
} from "./i18n.js";

const SUBPROTOCOL = "rsb.v1";
const TOKEN_PROTOCOL_PREFIX = "rsb.token.";
const CLOSE_SESSION_ENDED = 4103;
// Closes that a retry cannot fix: bad or expired token, wrong origin, unknown session.
const CLOSE_FATAL = new Set([4001, 4003, 4004, 4005, 4006, 4007, 4404]);
const RETRY_MAX_MS = 10000;
const AGENT_SLOT = 0;
const CUSTOMER_SLOT = 0xfffd;
// The page never learns the agent's key epochs: its channel stays at epoch 1 (the agent keeps
// it, counters and all, for as long as this page keeps its key).
const CHAT_EPOCH = 1;
const MAX_CHAT_BYTES = 4000;
const MAX_CHAT_FRAME = 64 * 1024;
const MAX_CHAT_LINES = 200;
const CHAT_PHASES = new Set(["observing", "controlling"]);
const MAX_COMMENT = 2000;
const CODE_SEPARATORS = /[\s.-]/g;
const CODE_PATTERN = /^[0-9]{6,16}$/;

// Literal keys only, so tests/unit/test_i18n.py can check every one exists in both languages.
const LEVEL_KEYS = { L1: "level.l1", L2: "level.l2", L3: "level.l3" };
const CASE_STATUS_KEYS = {
  open: "case_status.open",
  in_progress: "case_status.in_progress",
  awaiting_customer: "case_status.awaiting_customer",
  resolved: "case_status.resolved",
  closed: "case_status.closed",
};
const SESSION_STATE_KEYS = {
  waiting: "session_state.waiting",
  active: "session_state.active",
  ended: "session_state.ended",
};

const $ = (id) => document.getElementById(id);

/** What the page knows about its session: in memory only, gone with the tab. */
const live = {
  joined: null, // the /api/v1/join answer: session_id, case_number, engineer, tokens
  organisation: null,
  ws: null,
  connected: false,
  retries: 0,
  refused: null, // close reason when the broker will not take this page back
  phase: "connecting",
  viewing: [],
  controller: null,
  awaitingState: false, // a pause/resume was sent and its state has not come back yet
  people: new Map(), // slot -> {participant, name, level, role}
  asking: new Map(), // "slot:permission" -> {slot, permission, requestId, name, level, reason}
  keys: new Map(), // "slot:algorithm" -> {slot, algorithm, key}
  readbackRun: 0,
  check: null, // last status-check answer, redrawn when the language changes
};

/** The chat's keys: made once per page load, in memory only, kept across reconnects. */
const chat = {
  pair: null, // Promise<KeyPair|null>; null when this browser cannot do the key agreement
  own: null, // the KeyPair once made
  failed: false,
  agentKey: null, // the agent's PublicKey the channel was derived with
  channel: null, // PairwiseChannel to the agent, slot CUSTOMER_SLOT, Side.VIEWER
  queue: Promise.resolve(), // keys and frames are handled one after another, in order
  problem: null, // i18n key of the last send failure, cleared by the next success
};

// --- texts that follow the language switch -------------------------------------------------

const spoken = new Map(); // element -> [key, params]

/** Put a translated text in `el` and remember it, so a language switch redraws it. */
function say(el, key, params = {}) {
  spoken.set(el, [key, params]);
  el.textContent = t(key, params);
}

function silence(el) {
  spoken.delete(el);
  el.textContent = "";
}

function redrawSpoken() {
  for (const [el, [key, params]] of spoken) {
    el.textContent = t(key, params);
  }
}

// --- HTTP ---------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** POST JSON to the broker; the token, if any, goes in the Authorization header only. */
async function post(path, body, token) {
  const headers = { Accept: "application/json", "Content-Type": "application/json" };
  if (token) {
    headers.Authorization = `Bearer ${token}`;
  }
  let response;
  try {
    response = await fetch(path, {
      method: "POST",
      headers,
      body: JSON.stringify(body ?? {}),
      credentials: "omit",
      cache: "no-store",
    });
  } catch (err) {
    throw new ApiError(0, "network", String(err));
  }
  let data = null;
  try {
    data = await response.json();
  } catch {
    data = null;
  }
  if (!response.ok) {
    throw new ApiError(response.status, data?.error ?? "http_error", data?.message ?? "");
  }
  return data;
}

// --- joining ------------------------------------------------------------------------------

function normaliseCode(text) {
  const digits = String(text).replace(CODE_SEPARATORS, "");
  return CODE_PATTERN.test(digits) ? digits : null;
}

/** The code of a join link (/j#1234567890), removed from the address bar before anything else. */
function takeCodeFromFragment() {
  if (!location.hash) {
    return null;
  }
  const raw = location.hash.slice(1);
  // Wipe it first: the code must not linger in history, bookmarks or a shared screenshot.
  history.replaceState(null, "", location.pathname + location.search);
  let text = raw;
  try {
    text = decodeURIComponent(raw);
  } catch {
    text = raw;
  }
  return normaliseCode(text);
}

async function join(code) {
  const error = $("join-error");
  const submit = $("join-submit");
  error.hidden = true;
  submit.disabled = true;
  say(submit, "join.busy");
  try {
    const joined = await post("/api/v1/join", { code });
    $("code").value = "";
    enterSession(joined);
  } catch (err) {
    error.hidden = false;
    if (err.status === 410) {
      say(error, "join.err_rejected");
    } else if (err.status === 429) {
      say(error, "join.err_rate");
    } else if (err.status === 0) {
      say(error, "join.err_network");
    } else {
      say(error, "join.err_other", { detail: err.message || err.code });
    }
  } finally {
    submit.disabled = false;
    say(submit, "join.submit");
  }
}

function onJoinSubmit(event) {
  event.preventDefault();
  const code = normaliseCode($("code").value);
  const error = $("join-error");
  if (code === null) {
    error.hidden = false;
    say(error, "join.err_format");
    return;
  }
  join(code);
}

// --- the session --------------------------------------------------------------------------

function levelText(level) {
  return t(LEVEL_KEYS[level] ?? "level.none");
}

function enterSession(joined) {
  live.joined = joined;
  $("join-view").hidden = true;
  $("session-view").hidden = false;
  $("case-number").textContent = joined.case_number;
  $("agent-cmd").textContent =
    `RSB_AGENT_TOKEN=${joined.agent_token} rsb-agent attach --broker ${location.origin}`;
  chat.pair = KeyPair.generate().then(
    (pair) => {
      chat.own = pair;
      drawReadback();
      drawChat();
      return pair;
    },
    () => {
      chat.failed = true;
      drawChat();
      return null;
    },
  );
  drawSession();
  connect();
}

function drawSession() {
  const joined = live.joined;
  if (joined === null) {
    return;
  }
  const engineer = joined.engineer ?? {};
  const name = engineer.display_name || t("status.engineer_fallback");
  // The engineers here now; until one joins, the one who has the session in hand (join
  // answer). An engineer who left is never named.
  const present = engineerSlots().map((slot) => live.people.get(slot));
  $("engineer").textContent =
    present.length > 0
      ? joinList(present.map((person) => t("session.engineer_value", { name: person.name, level: levelText(person.level) })))
      : t("session.engineer_value", { name, level: levelText(engineer.level) });
  $("ask-view").textContent = t("ask.view", { name });
  drawState();
  drawReadback();
}

function personLabel(slot) {
  const person = live.people.get(slot);
  if (person === undefined) {
    return t("status.engineer_fallback");
  }
  return person.level ? t("status.person", { name: person.name, level: person.level }) : person.name;
}

function engineerSlots() {
  return [...live.people.entries()]
    .filter(([slot, person]) => slot !== AGENT_SLOT && person.role === "viewer")
    .map(([slot]) => slot)
    .sort((a, b) => a - b);
}

/** The status sentence as [key, params], from the last `state` the broker sent. */
function stateSentence() {
  if (live.refused !== null) {
    return ["status.refused", { detail: live.refused }];
  }
  if (live.phase === "ended") {
    return ["status.ended", {}];
  }
  if (!live.connected) {
    return [live.retries > 0 ? "status.reconnecting" : "status.connecting", {}];
  }
  switch (live.phase) {
    case "waiting":
      return ["status.waiting", {}];
    case "pending_consent": {
      const asking = engineerSlots();
      if (asking.length === 0) {
        return ["status.pending_no_engineer", {}];
      }
      return ["status.pending", { names: joinList(asking.map(personLabel)) }];
    }
    case "observing":
      return ["status.observing", { names: joinList(live.viewing.map(personLabel)) }];
    case "controlling":
      return ["status.controlling", { name: personLabel(live.controller) }];
    case "paused":
      return ["status.paused", {}];
    default:
      return ["status.connecting", {}];
  }
}

function drawState() {
  const [key, params] = stateSentence();
  const text = $("state-text");
  say(text, key, params);
  let shown = live.phase;
  if (live.refused !== null) {
    shown = "refused";
  } else if (!live.connected && shown !== "ended") {
    shown = live.retries > 0 ? "reconnecting" : "connecting";
  }
  text.dataset.phase = shown;

  const extra = $("state-extra");
  const others = live.viewing.filter((slot) => slot !== live.controller);
  if (live.connected && live.phase === "controlling" && others.length > 0) {
    extra.hidden = false;
    say(extra, "status.also_viewing", { names: joinList(others.map(personLabel)) });
  } else {
    extra.hidden = true;
    silence(extra);
  }
  drawAsking();
  drawControls();
  drawChat();
}

/**
 * What the engineers are asking right now and why, as the broker showed it (the same request
 * the support program prompts for). The reason is the engineer's free text: it is made one
 * short printable line again here and only ever set as text, never as markup.
 */
function drawAsking() {
  const list = $("asking");
  const open = live.connected && live.phase !== "ended" ? [...live.asking.values()] : [];
  for (const item of list.children) {
    for (const child of item.children) {
      spoken.delete(child);
    }
  }
  list.replaceChildren(
    ...open.map((request) => {
      const item = document.createElement("li");
      item.dataset.slot = String(request.slot);
      item.dataset.permission = request.permission;
      const who = request.level ? t("status.person", { name: request.name, level: request.level }) : request.name;
      const what = document.createElement("span");
      what.className = "what";
      say(what, request.permission === "view" ? "asking.view" : "asking.control", { name: who });
      item.append(what);
      if (request.permission !== "view") {
        const why = document.createElement("span");
        why.className = "reason";
        if (request.reason) {
          say(why, "asking.reason", { reason: request.reason });
        } else {
          say(why, "asking.no_reason");
        }
        item.append(why);
      }
      const where = document.createElement("span");
      where.className = "hint";
      say(where, "asking.where");
      item.append(" ", where);
      return item;
    }),
  );
  list.hidden = open.length === 0;
}

/** A consent request the broker shows the page: checked field by field, the reason cleaned. */
function rememberRequest(message) {
  const slot = message.slot;
  const permission = message.permission;
  if (!Number.isInteger(slot) || typeof permission !== "string" || typeof message.request_id !== "string") {
    return;
  }
  live.asking.set(`${slot}:${permission}`, {
    slot,
    permission,
    requestId: message.request_id,
    name: cleanText(message.engineer_name ?? "", 200) || t("status.engineer_fallback"),
    level: typeof message.engineer_level === "string" ? message.engineer_level : null,
    reason: typeof message.reason === "string" ? cleanText(message.reason, CONSENT_REASON_MAX) : "",
  });
}

function forgetRequest(message) {
  const key = `${message.slot}:${message.permission}`;
  const known = live.asking.get(key);
  if (known !== undefined && known.requestId === message.request_id) {
    live.asking.delete(key);
  }
}

function drawControls() {
  const ended = live.phase === "ended";
  const open = live.connected && !ended;
  const paused = live.phase === "paused";
  $("controls").hidden = ended;
  $("agent-box").hidden = ended;
  $("pause-btn").hidden = paused;
  $("resume-btn").hidden = !paused;
  $("pause-btn").disabled = !open || live.awaitingState;
  $("resume-btn").disabled = !open || live.awaitingState;
  $("revoke-control-btn").disabled = !open || live.controller === null;
  $("stop-viewing-btn").disabled = !open || (live.viewing.length === 0 && engineerSlots().length === 0);
  // Ending works without the socket too (POST /api/v1/customer/end).
  $("end-btn").disabled = ended || live.refused !== null;
  $("controls-note").hidden = open || ended;
  $("feedback").hidden = !ended;
}

// --- live updates over /ws/customer -------------------------------------------------------

function socketUrl() {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/ws/customer`;
}

function connect() {
  if (live.phase === "ended" || live.refused !== null) {
    return;
  }
  // The token rides as a subprotocol: never in the URL, where logs and proxies would see it.
  const ws = new WebSocket(socketUrl(), [
    SUBPROTOCOL,
    TOKEN_PROTOCOL_PREFIX + live.joined.customer_token,
  ]);
  live.ws = ws;
  ws.binaryType = "arraybuffer";
  ws.addEventListener("open", () => {
    if (live.ws === ws) {
      live.connected = true;
      live.retries = 0;
      drawState();
    }
  });
  ws.addEventListener("message", (event) => {
    if (live.ws !== ws) {
      return;
    }
    if (typeof event.data === "string") {
      receive(event.data);
    } else {
      onChatFrame(new Uint8Array(event.data));
    }
  });
  ws.addEventListener("close", (event) => {
    if (live.ws === ws) {
      onSocketClosed(event);
    }
  });
}

function onSocketClosed(event) {
  live.ws = null;
  live.connected = false;
  live.awaitingState = false;
  if (event.code === CLOSE_SESSION_ENDED || live.phase === "ended") {
    sessionEnded();
    return;
  }
  if (CLOSE_FATAL.has(event.code)) {
    live.refused = event.reason || String(event.code);
    drawState();
    return;
  }
  live.retries += 1;
  drawState();
  const delay = Math.min(RETRY_MAX_MS, 500 * 2 ** Math.min(live.retries, 5));
  setTimeout(connect, delay);
}

function send(message) {
  if (live.ws === null || live.ws.readyState !== WebSocket.OPEN) {
    return false;
  }
  live.ws.send(JSON.stringify({ v: 1, ...message }));
  return true;
}

const HANDLERS = {
  welcome(message) {
    // A (re)connection: the broker now re-sends who is here, their keys and open requests.
    live.people.clear();
    live.keys.clear();
    live.asking.clear();
    live.organisation = message.organisation;
    const org = $("org-name");
    delete org.dataset.i18n;
    org.textContent = message.organisation;
    announceKey(live.ws);
    drawReadback();
  },
  state(message) {
    live.phase = message.phase;
    live.viewing = message.viewing_slots ?? [];
    live.controller = message.controller_slot ?? null;
    live.awaitingState = false;
    if (live.phase === "ended") {
      sessionEnded();
      return;
    }
    drawState();
  },
  join(message) {
    const before = live.people.get(message.slot);
    if (before !== undefined && before.participant !== message.participant) {
      forgetKeys(message.slot); // someone else in that slot: not their key
    }
    live.people.set(message.slot, {
      participant: message.participant,
      name: message.display_name,
      level: message.level ?? null,
      role: message.role,
    });
    drawSession();
  },
  leave(message) {
    live.people.delete(message.slot);
    forgetKeys(message.slot);
    for (const [key, request] of live.asking) {
      if (request.slot === message.slot) {
        live.asking.delete(key);
      }
    }
    drawSession();
  },
  consent_request(message) {
    rememberRequest(message);
    drawAsking();
  },
  consent_grant(message) {
    forgetRequest(message);
    drawAsking();
  },
  consent_refuse(message) {
    forgetRequest(message);
    drawAsking();
  },
  public_key(message) {
    if (message.slot === CUSTOMER_SLOT) {
      return; // our own slot: only we speak for it
    }
    live.keys.set(`${message.slot}:${message.algorithm}`, {
      slot: message.slot,
      algorithm: message.algorithm,
      key: message.key,
    });
    if (message.slot === AGENT_SLOT) {
      chat.queue = chat.queue.then(() => chatWithAgent(message)).catch(() => undefined);
    }
    drawReadback();
    drawChat();
  },
  end() {
    sessionEnded();
  },
  error() {
    // A decision the session could not take (e.g. a pause crossing one made in the support
    // program): the next `state` tells the truth, so only unlock the buttons.
    live.awaitingState = false;
    drawControls();
  },
};

function receive(text) {
  let message;
  try {
    message = JSON.parse(text);
  } catch {
    return;
  }
  if (message === null || typeof message !== "object" || message.v !== 1) {
    return;
  }
  const handler = Object.hasOwn(HANDLERS, message.type) ? HANDLERS[message.type] : null;
  if (handler !== null) {
    handler(message);
  }
}

function forgetKeys(slot) {
  for (const [id, entry] of live.keys) {
    if (entry.slot === slot) {
      live.keys.delete(id);
    }
  }
}

// --- the customer's decisions -------------------------------------------------------------

function onPause() {
  live.awaitingState = send({ type: "pause", by: "customer", reason: "" });
  drawControls();
}

function onResume() {
  live.awaitingState = send({ type: "resume", by: "customer" });
  drawControls();
}

function onRevokeControl() {
  if (live.controller !== null) {
    send({ type: "consent_revoke", slot: live.controller, permission: "control", reason: "" });
  }
}

function onStopViewing() {
  const slots = new Set([...live.viewing, ...engineerSlots()]);
  for (const slot of slots) {
    send({ type: "consent_revoke", slot, permission: "view", reason: "" });
  }
}

async function onEnd() {
  $("end-btn").disabled = true;
  // No reason of our own: the broker records "ended by customer".
  if (send({ type: "end", by: "customer", reason: "" })) {
    return; // the broker answers with state "ended", then closes the socket with 4103
  }
  try {
    await post("/api/v1/customer/end", {}, live.joined.customer_token);
  } catch (err) {
    if (err.status !== 409) {
      $("end-btn").disabled = false;
      return;
    }
  }
  sessionEnded();
}

function sessionEnded() {
  live.phase = "ended";
  live.viewing = [];
  live.controller = null;
  live.asking.clear();
  const ws = live.ws;
  live.ws = null;
  live.connected = false;
  if (ws !== null && ws.readyState <= WebSocket.OPEN) {
    ws.close(1000);
  }
  drawState();
}

async function onFeedback(solved) {
  const result = $("feedback-result");
  const buttons = [$("solved-btn"), $("not-solved-btn")];
  for (const button of buttons) {
    button.disabled = true;
  }
  // Optional, sent with the answer; the engineers read it as text.
  const comment = $("feedback-comment").value.trim().slice(0, MAX_COMMENT);
  try {
    const answer = await post("/api/v1/customer/confirm", { solved, comment }, live.joined.customer_token);
    result.dataset.status = answer.status;
    say(result, solved ? "feedback.thanks_solved" : "feedback.thanks_not_solved", {
      case: answer.case_number,
    });
  } catch (err) {
    delete result.dataset.status;
    say(result, "feedback.error", { detail: err.message || err.code });
  } finally {
    for (const button of buttons) {
      button.disabled = false;
    }
  }
}

async function onCopy() {
  const text = $("agent-cmd").textContent;
  try {
    await navigator.clipboard.writeText(text);
    say($("copy-status"), "agent.copied");
  } catch {
    const range = document.createRange();
    range.selectNodeContents($("agent-cmd"));
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    say($("copy-status"), "agent.copy_failed");
  }
}

// --- read-back words ----------------------------------------------------------------------

let readbackModule = null;

/** web/js/readback.js, loaded on first need; null if this deployment lacks it. */
function loadReadback() {
  if (readbackModule === null) {
    readbackModule = import("./readback.js").catch(() => null);
  }
  return readbackModule;
}

function fromBase64(text) {
  return Uint8Array.from(atob(text), (char) => char.charCodeAt(0));
}

/** The keys the agent counts: its own (slot 0), those of engineers present now, and ours. */
function readbackKeys() {
  const keys = [...live.keys.values()]
    .filter((entry) => entry.slot === AGENT_SLOT || live.people.has(entry.slot))
    .map((entry) => ({ slot: entry.slot, algorithm: entry.algorithm, raw: fromBase64(entry.key) }));
  if (chat.own !== null) {
    // Announced on every connection, so the agent and the engineers count it too.
    keys.push({ slot: CUSTOMER_SLOT, algorithm: chat.own.algorithm, raw: chat.own.public.raw });
  }
  return keys;
}

async function drawReadback() {
  const run = ++live.readbackRun;
  const words = $("readback-words");
  const digits = $("readback-digits");
  const keys = readbackKeys();
  const hasAgent = keys.some((entry) => entry.slot === AGENT_SLOT);
  const hasEngineer = keys.some((entry) => entry.slot !== AGENT_SLOT && entry.slot !== CUSTOMER_SLOT);
  if (live.joined === null || !hasAgent || !hasEngineer || live.phase === "ended") {
    delete words.dataset.words;
    say(words, "readback.none");
    words.classList.add("pending");
    silence(digits);
    return;
  }
  let result = null;
  try {
    const mod = await loadReadback();
    if (mod !== null) {
      result = await mod.readback(
        live.joined.session_id,
        keys.map((entry) => ({ algorithm: entry.algorithm, raw: entry.raw })),
      );
    }
  } catch {
    result = null;
  }
  if (run !== live.readbackRun) {
    return; // a newer key arrived meanwhile
  }
  if (result === null || result === undefined) {
    delete words.dataset.words;
    say(words, "readback.unavailable");
    words.classList.add("pending");
    silence(digits);
    return;
  }
  const list = Array.isArray(result.words) ? result.words : String(result.words).split(" ");
  spoken.delete(words);
  words.classList.remove("pending");
  words.dataset.words = list.join(" ");
  words.textContent = list.join(" ");
  const number = String(result.digits ?? "");
  say(digits, "readback.digits", { digits: `${number.slice(0, 3)} ${number.slice(3)}` });
}

// --- chat with the engineers ---------------------------------------------------------------

function toBase64(bytes) {
  return btoa(String.fromCharCode(...bytes));
}

/** Tell the broker our chat key on this connection (the same key on every reconnect). */
async function announceKey(ws) {
  const pair = await chat.pair;
  if (pair !== null && live.ws === ws && ws.readyState === WebSocket.OPEN) {
    send({ type: "public_key", slot: CUSTOMER_SLOT, algorithm: pair.algorithm, key: toBase64(pair.public.raw) });
  }
}

/** The agent announced a key: derive our channel with it, or keep the one we have. */
async function chatWithAgent(message) {
  const pair = await chat.pair;
  if (pair === null || message.algorithm !== pair.algorithm) {
    return; // the agent announces one key per algorithm; ours is the one that matters
  }
  const key = await PublicKey.fromRaw(message.algorithm, fromBase64(message.key));
  if (key.equals(chat.agentKey)) {
    return; // the same agent again (it reconnected): same channel, counters go on
  }
  chat.channel = await PairwiseChannel.create(
    live.joined.session_id, pair, key, CUSTOMER_SLOT, Side.VIEWER, CHAT_EPOCH,
  );
  chat.agentKey = key;
  drawChat();
}

/** Whether the agent holds our key and an engineer can read what we write. */
function chatState() {
  if (chat.failed) {
    return "chat.unavailable";
  }
  const agentHere = live.connected && live.phase !== "waiting" && chat.agentKey !== null;
  if (!agentHere || chat.channel === null) {
    return "chat.wait_agent";
  }
  if (live.phase === "paused") {
    return "chat.paused";
  }
  if (!CHAT_PHASES.has(live.phase)) {
    return "chat.wait_view";
  }
  return null;
}

function drawChat() {
  $("chat-box").hidden = live.phase === "ended" || live.refused !== null;
  const waiting = chatState();
  const status = $("chat-status");
  const shown = waiting ?? chat.problem;
  if (shown === null) {
    silence(status);
  } else {
    say(status, shown);
  }
  status.dataset.state = waiting === null ? "open" : waiting.slice("chat.".length);
  $("chat-input").disabled = waiting !== null;
  $("chat-send").disabled = waiting !== null;
}

function addChatLine(own, from, text) {
  const log = $("chat-log");
  const line = document.createElement("li");
  line.className = own ? "chat-line own" : "chat-line";
  const who = document.createElement("span");
  who.className = "who";
  if (own) {
    say(who, "chat.you");
  } else {
    who.textContent = from; // names come from the network: text, never markup
  }
  const body = document.createElement("span");
  body.className = "text";
  body.textContent = text;
  line.append(who, body);
  log.append(line);
  while (log.children.length > MAX_CHAT_LINES) {
    const first = log.firstElementChild;
    spoken.delete(first.firstElementChild);
    first.remove();
  }
  log.scrollTop = log.scrollHeight;
}

/** A CHAT frame from the agent, sealed to our key: an engineer's line with their name. */
function onChatFrame(data) {
  chat.queue = chat.queue
    .then(async () => {
      if (chat.channel === null) {
        return;
      }
      const { plaintext } = await chat.channel.open(data, MAX_CHAT_FRAME);
      const line = JSON.parse(new TextDecoder().decode(plaintext));
      if (typeof line?.from === "string" && typeof line?.text === "string") {
        addChatLine(false, line.from, line.text);
      }
    })
    .catch(() => undefined); // not for us, replayed or altered: nothing to show
}

async function onChatSubmit(event) {
  event.preventDefault();
  const input = $("chat-input");
  const text = input.value.trim();
  if (text === "" || chatState() !== null) {
    return;
  }
  const payload = new TextEncoder().encode(text);
  if (payload.length > MAX_CHAT_BYTES) {
    chat.problem = "chat.too_long";
    drawChat();
    return;
  }
  const frame = await chat.channel.seal(FrameType.CHAT, payload);
  // Checked after sealing: the socket may have dropped meanwhile, and a browser silently
  // discards what is sent on a closing socket. (An unsent frame only leaves a gap in the
  // sequence numbers, which the agent accepts.)
  const ws = live.ws;
  if (ws === null || ws.readyState !== WebSocket.OPEN) {
    chat.problem = "chat.not_sent";
    drawChat();
    return;
  }
  ws.send(frame);
  chat.problem = null;
  input.value = "";
  addChatLine(true, "", text);
  drawChat();
}

// --- "Check my case" ----------------------------------------------------------------------

async function onCheckSubmit(event) {
  event.preventDefault();
  const box = $("check-result");
  const submit = $("check-submit");
  submit.disabled = true;
  try {
    live.check = {
      ok: await post("/api/v1/status", {
        case_number: $("check-case").value.trim(),
        serial_number: $("check-serial").value.trim(),
      }),
    };
  } catch (err) {
    live.check = { error: err };
  } finally {
    submit.disabled = false;
  }
  drawCheck(box);
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.append(td);
}

function drawCheck(box = $("check-result")) {
  box.replaceChildren();
  const check = live.check;
  if (check === null) {
    return;
  }
  if (check.error) {
    const p = document.createElement("p");
    p.className = "error";
    p.setAttribute("role", "alert");
    const err = check.error;
    if (err.status === 404) {
      p.textContent = t("check.not_found");
    } else if (err.status === 429) {
      p.textContent = t("check.err_rate");
    } else {
      p.textContent = t("check.err_other", { detail: err.message || err.code });
    }
    box.append(p);
    return;
  }
  const status = check.ok;
  const summary = document.createElement("p");
  summary.className = "check-summary";
  summary.id = "check-summary";
  summary.dataset.status = status.status;
  summary.textContent = t("check.result", {
    case: status.case_number,
    product: status.product,
    status: t(CASE_STATUS_KEYS[status.status] ?? "case_status.open"),
  });
  const updated = document.createElement("p");
  updated.className = "hint";
  updated.textContent = t("check.updated", { when: formatTime(status.updated_at) });
  const heading = document.createElement("h3");
  heading.textContent = t("check.sessions");
  box.append(summary, updated, heading);
  if (status.sessions.length === 0) {
    const none = document.createElement("p");
    none.textContent = t("check.no_sessions");
    box.append(none);
    return;
  }
  const table = document.createElement("table");
  table.id = "check-sessions";
  const head = document.createElement("tr");
  for (const key of ["check.col_started", "check.col_engineer", "check.col_state", "check.col_ended"]) {
    const th = document.createElement("th");
    th.textContent = t(key);
    head.append(th);
  }
  const thead = document.createElement("thead");
  thead.append(head);
  const tbody = document.createElement("tbody");
  for (const session of status.sessions) {
    const row = document.createElement("tr");
    cell(row, formatTime(session.created_at));
    cell(row, session.engineer ?? t("check.no_engineer"));
    const stateKey = SESSION_STATE_KEYS[session.state];
    cell(row, stateKey ? t(stateKey) : session.state);
    cell(row, session.ended_at ? formatTime(session.ended_at) : "");
    tbody.append(row);
  }
  table.append(thead, tbody);
  box.append(table);
}

// --- start-up -----------------------------------------------------------------------------

function drawLanguageSwitch() {
  for (const button of document.querySelectorAll(".lang-btn")) {
    button.setAttribute("aria-pressed", String(button.dataset.lang === getLanguage()));
  }
}

function start() {
  const code = takeCodeFromFragment();
  setLanguage(detectLanguage(navigator.languages?.length ? navigator.languages : [navigator.language]));
  $("org-host").textContent = t("org.check", { host: location.host });
  drawLanguageSwitch();
  onLanguageChange(() => {
    redrawSpoken();
    if (live.organisation !== null) {
      $("org-name").textContent = live.organisation;
    }
    $("org-host").textContent = t("org.check", { host: location.host });
    drawLanguageSwitch();
    drawSession();
    drawCheck();
  });
  for (const button of document.querySelectorAll(".lang-btn")) {
    button.addEventListener("click", () => setLanguage(button.dataset.lang));
  }
  $("join-form").addEventListener("submit", onJoinSubmit);
  $("pause-btn").addEventListener("click", onPause);
  $("resume-btn").addEventListener("click", onResume);
  $("revoke-control-btn").addEventListener("click", onRevokeControl);
  $("stop-viewing-btn").addEventListener("click", onStopViewing);
  $("end-btn").addEventListener("click", onEnd);
  $("copy-btn").addEventListener("click", onCopy);
  $("solved-btn").addEventListener("click", () => onFeedback(true));
  $("not-solved-btn").addEventListener("click", () => onFeedback(false));
  $("check-form").addEventListener("submit", onCheckSubmit);
  $("chat-form").addEventListener("submit", onChatSubmit);
  document.body.dataset.ready = "true";
  if (code !== null) {
    join(code);
  }
}

start();
