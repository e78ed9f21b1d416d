// The customer page: exchange the session code for this session's tokens, show who is asking
// and how to start the agent, follow the session live, and let the customer pause, take back
// control or end it at any moment. This module starts the page and wires its parts together:
//
//   customer-join.js      the session code, from the link's fragment or the form
//   customer-device.js    whether this device can run the agent (a phone or tablet cannot)
//   customer-handoff.js   on a phone: open it on the computer, or hand the agent part over
//   customer-resume.js    the session kept in this tab's sessionStorage across a reload
//   customer-live.js      the session over /ws/customer (socket.js) and the customer's decisions
//   customer-status.js    who is here, the status sentence, what is asked, the buttons
//   customer-notice.js    the notice when an engineer waits for the customer's answer
//   customer-readback.js  the read-back words
//   customer-chat.js      chat sealed to the agent with the page's own key
//   customer-confirm.js   solved or not, after the end
//   customer-check.js     "Check my case", without a session
//   customer-errors.js    the broker's error and close codes as texts in both languages
//   customer-text.js      texts that follow the language switch
//
// The code is wiped from the address bar at once and never kept once spent. The session's
// tokens never go into a URL or localStorage: they stay in memory and in this tab's
// sessionStorage, so a reload resumes the session instead of asking for a spent code.

import {
  announceKey,
  drawChat,
  makeChatKey,
  onAgentKey,
  onChatFrame,
  onChatSubmit,
  restoreChat,
} from "./customer-chat.js";
import { drawCheck, onCheckSubmit } from "./customer-check.js";
import { onFeedback } from "./customer-confirm.js";
import { deviceKind } from "./customer-device.js";
import { closeMessage } from "./customer-errors.js";
import { backToCodeEntry, choiceDone, heldCode, newHandoff, restoreHandoff, showHandoff } from "./customer-handoff.js";
import { join, onJoinSubmit, takeCodeFromFragment, useCode } from "./customer-join.js";
import {
  attachView,
  endSession,
  holdAgentPart,
  live,
  pause,
  resume,
  revokeControl,
  startLive,
  stopViewing,
} from "./customer-live.js";
import { dismissNotice } from "./customer-notice.js";
import { drawReadback } from "./customer-readback.js";
import {
  copyAgentCommand,
  drawAsking,
  drawControls,
  drawSession,
  drawState,
  showOrganisation,
  showSession,
} from "./customer-status.js";
import { forgetSession, keepSession, storedSession } from "./customer-resume.js";
import { redrawSpoken, say, said } from "./customer-text.js";
import { detectLanguage, getLanguage, onLanguageChange, setLanguage, t } from "./i18n.js";

const $ = (id) => document.getElementById(id);

/**
 * Show and follow a session: just joined (kept in sessionStorage), or `saved` from there
 * after a reload (its chat and handoff code come back too).
 */
function enterSession(joined, saved = null) {
  choiceDone();
  if (saved === null) {
    keepSession({ ...joined, handoff: null }); // a handoff code is kept apart, with its deadline
  }
  showSession(joined);
  if (joined.part === "agent") {
    holdAgentPart(joined); // the phone follows the session; this computer starts the agent
    drawSession();
    return;
  }
  if (saved !== null) {
    restoreChat(saved.chat);
    restoreHandoff(saved.handoff);
  } else if (joined.handoff) {
    showHandoff(joined.handoff);
  }
  makeChatKey(drawReadback);
  startLive(joined, saved !== null);
  drawSession();
}

/** The broker will not take the token back: forget it, and say why where the customer is. */
function onRefused(code) {
  forgetSession();
  if (live.resumed && !live.welcomed) {
    // A reload of a session that ended long ago or whose token expired: back to code entry.
    $("session-view").hidden = true;
    $("join-view").hidden = false;
    delete document.body.dataset.part;
    const error = $("join-error");
    error.hidden = false;
    say(error, "resume.refused", { detail: said(...closeMessage(code)) });
  }
}

function resumeStored() {
  const saved = storedSession();
  if (saved !== null) {
    enterSession(saved.joined, saved);
  }
}

function joinHeld(part, button) {
  const code = heldCode();
  if (code !== null) {
    join(code, enterSession, { part, error: $("device-error"), submit: button });
  }
}

async function onEnd() {
  const button = $("end-btn");
  button.disabled = true;
  if (!(await endSession())) {
    button.disabled = false;
  }
}

function drawLanguageSwitch() {
  for (const button of document.querySelectorAll(".lang-btn")) {
    button.setAttribute("aria-pressed", String(button.dataset.lang === getLanguage()));
  }
}

function start() {
  const code = takeCodeFromFragment();
  attachView({
    session: drawSession,
    state: drawState,
    asking: drawAsking,
    controls: drawControls,
    readback: drawReadback,
    chat: drawChat,
    organisation: showOrganisation,
    welcome: announceKey,
    agentKey: onAgentKey,
    chatFrame: onChatFrame,
    refused: onRefused,
  });
  document.body.dataset.device = deviceKind();
  setLanguage(detectLanguage(navigator.languages?.length ? navigator.languages : [navigator.language]));
  $("org-host").textContent = t("org.check", { host: location.host });
  drawLanguageSwitch();
  onLanguageChange(() => {
    redrawSpoken();
    if (live.organisation !== null) {
      showOrganisation(live.organisation);
    }
    $("org-host").textContent = t("org.check", { host: location.host });
    drawLanguageSwitch();
    drawSession();
    drawCheck();
  });
  for (const button of document.querySelectorAll(".lang-btn")) {
    button.addEventListener("click", () => setLanguage(button.dataset.lang));
  }
  $("join-form").addEventListener("submit", (event) => onJoinSubmit(event, enterSession));
  $("device-phone-btn").addEventListener("click", () => joinHeld("customer", $("device-phone-btn")));
  $("device-override-btn").addEventListener("click", () => joinHeld("both", $("device-override-btn")));
  $("device-back-btn").addEventListener("click", backToCodeEntry);
  $("handoff-new-btn").addEventListener("click", newHandoff);
  $("notice-ok").addEventListener("click", dismissNotice);
  $("pause-btn").addEventListener("click", pause);
  $("resume-btn").addEventListener("click", resume);
  $("revoke-control-btn").addEventListener("click", revokeControl);
  $("stop-viewing-btn").addEventListener("click", stopViewing);
  $("end-btn").addEventListener("click", onEnd);
  $("copy-btn").addEventListener("click", copyAgentCommand);
  $("solved-btn").addEventListener("click", () => onFeedback(true));
  $("not-solved-btn").addEventListener("click", () => onFeedback(false));
  $("check-form").addEventListener("submit", onCheckSubmit);
  $("chat-form").addEventListener("submit", onChatSubmit);
  document.body.dataset.ready = "true";
  if (code !== null) {
    useCode(code, enterSession); // a new link wins over a stored session
  } else {
    resumeStored();
  }
}

start();
