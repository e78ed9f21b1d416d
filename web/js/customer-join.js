// The customer page's first step: the session code, from a join link's fragment or the form,
// exchanged for this session's tokens (POST /api/v1/join).
//
// The code is a secret for as long as it is unused: it is wiped from the address bar before
// anything else, sent only in a request body, and never kept once the broker has answered.

import { requestJson } from "./api.js";
import { say } from "./customer-text.js";

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

/** Exchange `code` for the session; `onJoined` gets the broker's answer (tokens and all). */
export async function join(code, onJoined) {
  const error = $("join-error");
  const submit = $("join-submit");
  error.hidden = true;
  submit.disabled = true;
  say(submit, "join.busy");
  try {
    const joined = await requestJson("POST", "/api/v1/join", { body: { code } });
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
      say(error, "join.err_other", { detail: err.message || err.code });
    }
  } finally {
    submit.disabled = false;
    say(submit, "join.submit");
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
  join(code, onJoined);
}
