// The customer page on a phone or tablet, which cannot run the support program
// (customer-device.js decides). A session code is never spent there by accident: the page
// first offers two ways on (docs/web.md, "The customer page on a phone"):
//
//   (a) open it on the computer: the short address and the code to type there; nothing is
//       sent, so the code still works on the computer;
//   (b) use this phone for the chat and the status: the code is spent for the customer part
//       only (POST /api/v1/join with part "customer"), and the phone shows a second one-time
//       code, the handoff code, with its link as a QR code. The computer's page or agent
//       redeems it at the same join endpoint for the agent part. The phone never holds an
//       agent token; a new code (POST /api/v1/customer/handoff) withdraws the previous one.
//
// The handoff code is a secret like the session code: it is only ever set as text, and its
// link carries it in the fragment, which browsers never send to a server.

import { requestJson } from "./api.js";
import { errorMessage } from "./customer-errors.js";
import { live } from "./customer-live.js";
import { keepHandoff } from "./customer-resume.js";
import { say, said, silence } from "./customer-text.js";
import { formatClock } from "./i18n.js";

const $ = (id) => document.getElementById(id);

let pendingCode = null; // the session code held back on a phone, in memory only
let handoff = null; // the broker's {code, code_display, expires_in, link, qr_image}, plus deadline
let expiryTimer = null;

/** The address a customer types on the computer: this host's join page. */
export function shortAddress() {
  return `${location.host}/j`;
}

/** Digits in groups of three, a lone last digit joining its group (as the broker formats). */
export function formatCode(code) {
  const groups = String(code).match(/.{1,3}/g) ?? [];
  if (groups.length > 1 && groups[groups.length - 1].length === 1) {
    groups.splice(-2, 2, groups[groups.length - 2] + groups[groups.length - 1]);
  }
  return groups.join(" ");
}

/** Hold `code` back and show the two ways on; nothing is sent to the broker. */
export function offerChoice(code) {
  pendingCode = code;
  $("join-view").hidden = true;
  $("device-view").hidden = false;
  $("device-error").hidden = true;
  $("device-address").textContent = shortAddress();
  $("device-code").textContent = formatCode(code);
  $("device-title").focus();
}

/** The code held back, for choice (b) or "this device is a computer". */
export function heldCode() {
  return pendingCode;
}

/** Back to code entry, the held code in the field, still unspent. */
export function backToCodeEntry() {
  $("device-view").hidden = true;
  $("join-view").hidden = false;
  if (pendingCode !== null) {
    $("code").value = formatCode(pendingCode);
  }
  pendingCode = null;
}

/** The session started: the choice view goes, and the held code is forgotten. */
export function choiceDone() {
  pendingCode = null;
  $("device-view").hidden = true;
}

/** A handoff code from the broker (the join answer or a new one): show it and remember it. */
export function showHandoff(next) {
  // Counted from this browser's clock: the broker's expires_at may be skewed against it.
  handoff = { ...next, deadline: Date.now() + Number(next.expires_in) * 1000 };
  keepHandoff(handoff);
  drawHandoff();
}

/** The handoff code kept across a reload, shown again if it has not expired. */
export function restoreHandoff(saved) {
  handoff = saved !== null && typeof saved?.code === "string" ? saved : null;
}

function agentConnected() {
  return live.connected && !["connecting", "waiting", "ended"].includes(live.phase);
}

export function drawHandoff() {
  const box = $("handoff-box");
  box.hidden = live.joined?.part !== "customer" || live.phase === "ended" || live.refused !== null;
  clearTimeout(expiryTimer);
  if (box.hidden) {
    return;
  }
  const expiresAt = handoff === null ? NaN : Number(handoff.deadline);
  const usable = Number.isFinite(expiresAt) && expiresAt > Date.now();
  const done = agentConnected();
  const show = usable && !done;
  $("handoff-code-box").hidden = !show;
  box.dataset.state = done ? "done" : usable ? "code" : "expired";
  const status = $("handoff-status");
  if (done) {
    say(status, "handoff.done");
  } else if (!usable) {
    say(status, "handoff.expired");
  } else {
    silence(status);
  }
  if (show) {
    $("handoff-address").textContent = shortAddress();
    $("handoff-code").textContent = handoff.code_display;
    $("handoff-qr").src = handoff.qr_image;
    say($("handoff-expiry"), "handoff.expires", { time: formatClock(expiresAt) });
    expiryTimer = setTimeout(drawHandoff, Math.min(expiresAt - Date.now() + 100, 2 ** 31 - 1));
  } else {
    $("handoff-code").textContent = "";
    $("handoff-qr").removeAttribute("src");
  }
}

/** Ask the broker for a new handoff code (the previous one stops working). */
export async function newHandoff() {
  const button = $("handoff-new-btn");
  const error = $("handoff-error");
  button.disabled = true;
  try {
    const next = await requestJson("POST", "/api/v1/customer/handoff", {
      token: live.joined.customer_token,
    });
    error.hidden = true;
    showHandoff(next);
  } catch (err) {
    error.hidden = false;
    say(error, "handoff.error", { detail: said(...errorMessage(err)) });
  } finally {
    button.disabled = false;
  }
}
