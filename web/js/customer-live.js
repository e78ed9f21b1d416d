// The customer page's live session: what the broker says over /ws/customer, kept in `live`,
// and the customer's decisions sent back on the same socket (pause, resume, revoke, end).
//
// The tokens arrive with the join answer (or from sessionStorage after a reload:
// customer-resume.js) and never go into a URL; the customer token rides as a subprotocol
// (socket.js). A dropped socket is opened again with back-off; the session's end or a refusal
// (bad or expired token, unknown session: AfterClose.REFUSED) is final. This module draws nothing:
// the page's views register what to redraw with `attachView`, and import this module, never
// the other way round.

import { requestJson } from "./api.js";
import { t } from "./i18n.js";
import { cleanText } from "./messages.js";
import { AfterClose, afterClose, openSocket, socketUrl } from "./socket.js";
import { AGENT_SLOT, CONSENT_REASON_MAX, CUSTOMER_SLOT, PROTOCOL_VERSION } from "./wire.js";

const RETRY_MAX_MS = 10000;

/** What the page knows about its session: in memory only, gone with the tab. */
export const live = {
  joined: null, // the /api/v1/join answer: session_id, case_number, engineer, part, tokens
  resumed: false, // the session came back from sessionStorage after a reload
  organisation: null,
  ws: null,
  connected: false,
  welcomed: false, // the broker took this page in at least once (a welcome arrived)
  retries: 0,
  refused: null, // close code when the broker will not take this page back
  phase: "connecting",
  viewing: [],
  controller: null,
  awaitingState: false, // a pause/resume was sent and its state has not come back yet
  people: new Map(), // slot -> {participant, name, level, role}
  asking: new Map(), // "slot:permission" -> {slot, permission, requestId, name, level, reason}
  keys: new Map(), // "slot:algorithm" -> {slot, algorithm, key}
};

const noop = () => {};

/** What to redraw, and who hears of keys and chat frames; set by customer.js. */
const view = {
  session: noop, // who is here changed: names, then everything `state` redraws
  state: noop, // the phase changed: status sentence, requests, buttons, chat box
  asking: noop,
  controls: noop,
  readback: noop,
  chat: noop,
  organisation: noop, // (name) the relay's welcome named the organisation
  welcome: noop, // (ws) a (re)connection: announce our chat key on it
  agentKey: noop, // (public_key message) the agent announced a key
  chatFrame: noop, // (Uint8Array) a binary frame: chat sealed to our key
  refused: noop, // (code) the broker will not take this token back: forget it
};

export function attachView(parts) {
  Object.assign(view, parts);
}

/** Engineers here now, by slot. */
export function engineerSlots() {
  return [...live.people.entries()]
    .filter(([slot, person]) => slot !== AGENT_SLOT && person.role === "viewer")
    .map(([slot]) => slot)
    .sort((a, b) => a - b);
}

/** Follow the session the join answer describes (`resumed`: it came back after a reload). */
export function startLive(joined, resumed = false) {
  Object.assign(live, {
    joined,
    resumed,
    connected: false,
    welcomed: false,
    retries: 0,
    refused: null,
    phase: "connecting",
    viewing: [],
    controller: null,
    awaitingState: false,
  });
  live.people.clear();
  live.asking.clear();
  live.keys.clear();
  connect();
}

/** The computer that took a phone's agent part: it shows the agent's start, no live socket. */
export function holdAgentPart(joined) {
  live.joined = joined;
}

// --- the socket ---------------------------------------------------------------------------

function connect() {
  if (live.phase === "ended" || live.refused !== null) {
    return;
  }
  const ws = openSocket(socketUrl("/ws/customer"), live.joined.customer_token);
  live.ws = ws;
  ws.addEventListener("open", () => {
    if (live.ws === ws) {
      live.connected = true;
      live.retries = 0;
      view.state();
    }
  });
  ws.addEventListener("message", (event) => {
    if (live.ws !== ws) {
      return;
    }
    if (typeof event.data === "string") {
      receive(event.data);
    } else {
      view.chatFrame(new Uint8Array(event.data));
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
  const after = afterClose(event.code);
  if (after === AfterClose.ENDED || live.phase === "ended") {
    sessionEnded();
    return;
  }
  // A retry cannot fix these: bad or expired token, wrong origin, unknown session.
  if (after === AfterClose.REFUSED) {
    live.refused = event.code;
    view.refused(event.code);
    view.state();
    return;
  }
  live.retries += 1;
  view.state();
  const delay = Math.min(RETRY_MAX_MS, 500 * 2 ** Math.min(live.retries, 5));
  setTimeout(connect, delay);
}

/** Send a control message; false when the socket is not open. */
export function send(message) {
  if (live.ws === null || live.ws.readyState !== WebSocket.OPEN) {
    return false;
  }
  live.ws.send(JSON.stringify({ v: PROTOCOL_VERSION, ...message }));
  return true;
}

// --- what the broker says -----------------------------------------------------------------

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

function forgetKeys(slot) {
  for (const [id, entry] of live.keys) {
    if (entry.slot === slot) {
      live.keys.delete(id);
    }
  }
}

const HANDLERS = {
  welcome(message) {
    // A (re)connection: the broker now re-sends who is here, their keys and open requests.
    live.welcomed = true;
    live.people.clear();
    live.keys.clear();
    live.asking.clear();
    live.organisation = message.organisation;
    view.organisation(message.organisation);
    view.welcome(live.ws);
    view.readback();
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
    view.state();
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
    view.session();
  },
  leave(message) {
    live.people.delete(message.slot);
    forgetKeys(message.slot);
    for (const [key, request] of live.asking) {
      if (request.slot === message.slot) {
        live.asking.delete(key);
      }
    }
    view.session();
  },
  consent_request(message) {
    rememberRequest(message);
    view.asking();
  },
  consent_grant(message) {
    forgetRequest(message);
    view.asking();
  },
  consent_refuse(message) {
    forgetRequest(message);
    view.asking();
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
      view.agentKey(message);
    }
    view.readback();
    view.chat();
  },
  end() {
    sessionEnded();
  },
  error() {
    // A decision the session could not take (e.g. a pause crossing one made in the support
    // program): the next `state` tells the truth, so only unlock the buttons.
    live.awaitingState = false;
    view.controls();
  },
};

function receive(text) {
  let message;
  try {
    message = JSON.parse(text);
  } catch {
    return;
  }
  if (message === null || typeof message !== "object" || message.v !== PROTOCOL_VERSION) {
    return;
  }
  const handler = Object.hasOwn(HANDLERS, message.type) ? HANDLERS[message.type] : null;
  if (handler !== null) {
    handler(message);
  }
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
  view.state();
}

// --- the customer's decisions -------------------------------------------------------------

export function pause() {
  live.awaitingState = send({ type: "pause", by: "customer", reason: "" });
  view.controls();
}

export function resume() {
  live.awaitingState = send({ type: "resume", by: "customer" });
  view.controls();
}

export function revokeControl() {
  if (live.controller !== null) {
    send({ type: "consent_revoke", slot: live.controller, permission: "control", reason: "" });
  }
}

export function stopViewing() {
  const slots = new Set([...live.viewing, ...engineerSlots()]);
  for (const slot of slots) {
    send({ type: "consent_revoke", slot, permission: "view", reason: "" });
  }
}

/**
 * End the session: on the socket, or over HTTP when the socket is down.
 * @returns {Promise<boolean>} false when the end could not be sent (try again)
 */
export async function endSession() {
  // No reason of our own: the broker records "ended by customer".
  if (send({ type: "end", by: "customer", reason: "" })) {
    return true; // the broker answers with state "ended", then closes the socket (SESSION_ENDED)
  }
  try {
    await requestJson("POST", "/api/v1/customer/end", { body: {}, token: live.joined.customer_token });
  } catch (err) {
    if (err.status !== 409) {
      return false; // 409: it had ended already
    }
  }
  sessionEnded();
  return true;
}
