// The customer page's read-back words: the string the engineer reads over the phone, computed
// here over the same keys (the agent's, the engineers' here now, and the page's chat key) with
// the console's code (readback.js, matching rsb_protocol/readback.py).

import { fromBase64, ownChatKey } from "./customer-chat.js";
import { live } from "./customer-live.js";
import { forget, say, silence } from "./customer-text.js";
import { AGENT_SLOT, CUSTOMER_SLOT } from "./wire.js";

const $ = (id) => document.getElementById(id);

let readbackModule = null;
let readbackRun = 0;

/** web/js/readback.js, loaded on first need; null if this deployment lacks it. */
function loadReadback() {
  if (readbackModule === null) {
    readbackModule = import("./readback.js").catch(() => null);
  }
  return readbackModule;
}

/** The keys the agent counts: its own (slot 0), those of engineers present now, and ours. */
function readbackKeys() {
  const keys = [...live.keys.values()]
    .filter((entry) => entry.slot === AGENT_SLOT || live.people.has(entry.slot))
    .map((entry) => ({ slot: entry.slot, algorithm: entry.algorithm, raw: fromBase64(entry.key) }));
  const own = ownChatKey();
  if (own !== null) {
    // Announced on every connection, so the agent and the engineers count it too.
    keys.push({ slot: CUSTOMER_SLOT, algorithm: own.algorithm, raw: own.public.raw });
  }
  return keys;
}

export async function drawReadback() {
  const run = ++readbackRun;
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
  if (run !== readbackRun) {
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
  forget(words);
  words.classList.remove("pending");
  words.dataset.words = list.join(" ");
  words.textContent = list.join(" ");
  const number = String(result.digits ?? "");
  say(digits, "readback.digits", { digits: `${number.slice(0, 3)} ${number.slice(3)}` });
}
