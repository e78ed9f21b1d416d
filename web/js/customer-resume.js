// The customer page's memory across a reload: the join answer (the session's tokens among it),
// the chat so far and a live handoff code, kept in sessionStorage under one key.
//
// sessionStorage, never localStorage and never the URL: it belongs to this one tab, goes when
// the tab closes, is not shared with other tabs or windows, and never travels in a request
// line, a Referer or the history (docs/security.md, "Web hygiene"). Without it a reload
// dropped the customer back to code entry with the code spent. Whether the stored tokens
// still work is the broker's to say, not the browser clock's (which may be wrong): a session
// the broker refuses is forgotten when it says so (customer.js), and one the customer has
// answered "solved?" for is forgotten then (customer-confirm.js).

const KEY = "rsb.customer.session";
const VERSION = 1;
const MAX_CHAT_LINES = 200;

function storage() {
  try {
    return window.sessionStorage;
  } catch {
    return null; // storage disabled: the page works as before, without resuming
  }
}

function read() {
  const store = storage();
  if (store === null) {
    return null;
  }
  try {
    const saved = JSON.parse(store.getItem(KEY) ?? "null");
    return saved !== null && typeof saved === "object" && saved.v === VERSION ? saved : null;
  } catch {
    return null;
  }
}

function write(saved) {
  const store = storage();
  if (store === null) {
    return;
  }
  try {
    store.setItem(KEY, JSON.stringify(saved));
  } catch {
    // full or refused: resuming is a convenience, the session goes on
  }
}

/** Remember the join answer (a fresh join replaces whatever was stored). */
export function keepSession(joined) {
  write({ v: VERSION, joined, chat: [], handoff: null });
}

/** The stored session ({v, joined, chat, handoff}), or null. */
export function storedSession() {
  const saved = read();
  return typeof saved?.joined?.session_id === "string" ? saved : null;
}

export function forgetSession() {
  storage()?.removeItem(KEY);
}

/** Add a chat line ({own, from, text}) to the stored session, keeping the last lines only. */
export function keepChatLine(line) {
  const saved = read();
  if (saved === null) {
    return;
  }
  saved.chat = [...(Array.isArray(saved.chat) ? saved.chat : []), line].slice(-MAX_CHAT_LINES);
  write(saved);
}

/** Remember the phone's live handoff code (null: none), so a reload shows the same one. */
export function keepHandoff(handoff) {
  const saved = read();
  if (saved === null) {
    return;
  }
  saved.handoff = handoff;
  write(saved);
}
