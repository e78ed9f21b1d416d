// The customer page's first step: the session code, from a join link's fragment or the form,
// exchanged for this session's tokens (POST /api/v1/join).
//
// The code is a secret for as long as it is unused: it is wiped from the address bar before
// anything else, sent only in a request body, and never kept once the broker has answered.
// On a phone or tablet nothing is sent until the customer chose how to go on
// (customer-handoff.js). The same form takes a handoff code a phone showed: the broker tells
// which part of the session the answer carries.

import { requestJson } from "./api.js";
import { cannotRunAgent } from "./customer-device.js";
import { errorMessage } from "./customer-errors.js";
import { offerChoice } from "./customer-handoff.js";
import { say, said } from "./customer-text.js";

const CODE_SEPARATORS = /[\s.-]/g;
const CODE_PATTERN = /^[0-9]{6,16}$/;

const $ = (id) => document.getElementById(id);

function normaliseCode(text) {
  const digits = String(text).replace(CODE_SEPARATORS, "");
  return CODE_PATTERN.test(digits) ? digits : null;
}

/** The code of a join link (/j#1234567890), removed from the address bar before anything else. */
export function takeCodeFromFragment() {
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

/**
 * Exchange `code` for the session; `onJoined` gets the broker's answer (tokens and all).
 * `part` "customer" keeps the agent part for another device (a phone's choice); `error` and
 * `submit` are the elements that show the outcome and the busy state.
 */
export async function join(code, onJoined, { part = "both", error = $("join-error"), submit = $("join-submit") } = {}) {
  const idle = submit.dataset.i18n;
  error.hidden = true;
  submit.disabled = true;
  say(submit, "join.busy");
  try {
    const body = part === "both" ? { code } : { code, part };
    const joined = await requestJson("POST", "/api/v1/join", { body });
    $("code").value = "";
    onJoined(joined);
  } catch (err) {
    error.hidden = false;
    if (err.status === 410) {
      say(error, "join.err_rejected");
    } else if (err.status === 429) {
      say(error, "join.err_rate");
    } else if (err.status === 0) {
      say(error, "join.err_network");
    } else {
      say(error, "join.err_other", { detail: said(...errorMessage(err)) });
    }
  } finally {
    submit.disabled = false;
    say(submit, idle);
  }
}

/** A code to use on this page: joined at once on a computer, held back on a phone. */
export function useCode(code, onJoined) {
  if (cannotRunAgent()) {
    offerChoice(code);
  } else {
    join(code, onJoined);
  }
}

/** The join form: a code of the wrong shape is refused here, without asking the broker. */
export function onJoinSubmit(event, onJoined) {
  event.preventDefault();
  const code = normaliseCode($("code").value);
  const error = $("join-error");
  if (code === null) {
    error.hidden = false;
    say(error, "join.err_format");
    return;
  }
  useCode(code, onJoined);
}
