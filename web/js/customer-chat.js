// The customer page's chat with the engineers, end to end through the agent.
//
// The page makes one ephemeral key pair per page load (WebCrypto, X25519 or P-256, never
// exported or stored), announces its public key from the customer slot on every (re)connect,
// and seals its chat to the agent on a pairwise channel (docs/protocol.md, "The customer
// page's chat channel"). The agent passes it on to the engineers and seals their answers to
// this page; the broker relays ciphertext only. The page never holds the screen's group key.
// The lines shown so far (plain text) are kept with the session in this tab's sessionStorage
// (customer-resume.js), so a reload shows them again; the key pair is not: a reloaded page
// announces a new key, and the read-back words change with it.

import { live, send } from "./customer-live.js";
import { keepChatLine } from "./customer-resume.js";
import { forget, say, silence } from "./customer-text.js";
import { KeyPair, PairwiseChannel, PublicKey, Side } from "./e2e.js";
import { CUSTOMER_SLOT, FrameType } from "./wire.js";

// The page never learns the agent's key epochs: its channel stays at epoch 1 (the agent keeps
// it, counters and all, for as long as this page keeps its key).
const CHAT_EPOCH = 1;
const MAX_CHAT_BYTES = 4000;
const MAX_CHAT_FRAME = 64 * 1024;
const MAX_CHAT_LINES = 200;
const CHAT_PHASES = new Set(["observing", "controlling"]);

const $ = (id) => document.getElementById(id);

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

/** Make this page's key pair; `onKey` runs once it exists (the read-back counts it). */
export function makeChatKey(onKey) {
  chat.pair = KeyPair.generate().then(
    (pair) => {
      chat.own = pair;
      onKey();
      drawChat();
      return pair;
    },
    () => {
      chat.failed = true;
      drawChat();
      return null;
    },
  );
}

/** Our key pair once made, else null. */
export function ownChatKey() {
  return chat.own;
}

export function fromBase64(text) {
  return Uint8Array.from(atob(text), (char) => char.charCodeAt(0));
}

function toBase64(bytes) {
  return btoa(String.fromCharCode(...bytes));
}

/** Tell the broker our chat key on this connection (the same key on every reconnect). */
export async function announceKey(ws) {
  const pair = await chat.pair;
  if (pair !== null && live.ws === ws && ws.readyState === WebSocket.OPEN) {
    send({ type: "public_key", slot: CUSTOMER_SLOT, algorithm: pair.algorithm, key: toBase64(pair.public.raw) });
  }
}

/** The agent announced a key: derive our channel with it, in turn with the frames. */
export function onAgentKey(message) {
  chat.queue = chat.queue.then(() => chatWithAgent(message)).catch(() => undefined);
}

/** Derive the channel with the agent's key, or keep the one we have. */
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

export function drawChat() {
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

/** Lines kept from before a reload, drawn again (not kept a second time). */
export function restoreChat(lines) {
  for (const line of Array.isArray(lines) ? lines : []) {
    if (typeof line?.text === "string" && typeof line?.from === "string") {
      addChatLine(line.own === true, line.from, line.text, false);
    }
  }
}

function addChatLine(own, from, text, keep = true) {
  if (keep) {
    keepChatLine({ own, from, text });
  }
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
    forget(first.firstElementChild);
    first.remove();
  }
  log.scrollTop = log.scrollHeight;
}

/** A CHAT frame from the agent, sealed to our key: an engineer's line with their name. */
export function onChatFrame(data) {
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

export async function onChatSubmit(event) {
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
