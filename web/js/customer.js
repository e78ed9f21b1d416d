// The customer page: exchange the session code for this session's tokens, show who is asking
// and how to start the agent, follow the session live, and let the customer pause, take back
// control or end it at any moment. This module starts the page and wires its parts together:
//
//   customer-join.js      the session code, from the link's fragment or the form
//   customer-live.js      the session over /ws/customer (socket.js) and the customer's decisions
//   customer-status.js    who is here, the status sentence, what is asked, the buttons
//   customer-readback.js  the read-back words
//   customer-chat.js      chat sealed to the agent with the page's own key
//   customer-confirm.js   solved or not, after the end
//   customer-check.js     "Check my case", without a session
//   customer-text.js      texts that follow the language switch
//
// Everything secret stays in memory: the code is wiped from the address bar at once, and
// tokens never go into a URL or into web storage.

import { announceKey, drawChat, makeChatKey, onAgentKey, onChatFrame, onChatSubmit } from "./customer-chat.js";
import { drawCheck, onCheckSubmit } from "./customer-check.js";
import { onFeedback } from "./customer-confirm.js";
import { join, onJoinSubmit, takeCodeFromFragment } from "./customer-join.js";
import { attachView, endSession, live, pause, resume, revokeControl, startLive, stopViewing } from "./customer-live.js";
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
import { redrawSpoken } from "./customer-text.js";
import { detectLanguage, getLanguage, onLanguageChange, setLanguage, t } from "./i18n.js";

const $ = (id) => document.getElementById(id);

function enterSession(joined) {
  showSession(joined);
  makeChatKey(drawReadback);
  startLive(joined);
  drawSession();
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
  });
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
    join(code, enterSession);
  }
}

start();
