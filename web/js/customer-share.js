// "Share my screen from this browser" on the customer page: the button, the consent question
// the page asks itself (naming the engineer, level and case, with the read-back words), and
// what is being shared. The work (socket, keys, capture, tiles, sealing) is share.js; this
// module only draws, in English or Spanish as the rest of the page.
//
// It needs no wiring from customer.js: it waits for the session view to open (the join
// answer is then in customer-live.js's `live`) and adds its own section after the agent's.
// The agent token goes to share.js only, which offers it as a subprotocol, never in a URL.

import { live } from "./customer-live.js";
import { getLanguage, onLanguageChange, t } from "./i18n.js";
import { BrowserShare } from "./share.js";
import { AGENT_SLOT } from "./wire.js";

const TEXTS = {
  en: {
    title: "Or share your screen from this browser",
    intro: "Nothing to install. The engineer can only see your screen, never control it. Your browser asks you which screen to show.",
    start: "Share my screen from this browser",
    unsupported: "This browser cannot share its screen. Please use the support program above.",
    agent_here: "The support program is already running on your computer.",
    connecting: "Connecting…",
    ready: "Ready. When the engineer asks to see your screen, you will be asked here.",
    sharing: "Sharing your screen with {names}. Nobody can control it.",
    paused: "Paused: nothing is shared.",
    stopped: "You stopped sharing. The engineer sees nothing now.",
    ended: "The session has ended.",
    closed: "Sharing from this browser stopped: {reason}",
    ask_title: "May {name} see your screen?",
    ask_who: "{name}, {level}, for case {case} of {organisation}.",
    ask_words: "Read-back words: {words} (digits {digits}). The engineer reads you the same words on the phone; if they differ, say no.",
    ask_view_only: "They will see the screen you choose next, and cannot control it. You can stop at any time.",
    ask_recorded: "This session is recorded.",
    yes: "Yes, show my screen",
    no: "No",
    stop: "Stop sharing",
    refused: "You said no: {name} does not see your screen.",
    no_screen: "No screen was chosen, so nothing is shared.",
  },
  es: {
    title: "O comparta su pantalla desde este navegador",
    intro: "No hay que instalar nada. El técnico solo puede ver su pantalla, nunca controlarla. Su navegador le pregunta qué pantalla mostrar.",
    start: "Compartir mi pantalla desde este navegador",
    unsupported: "Este navegador no puede compartir la pantalla. Use el programa de asistencia de arriba.",
    agent_here: "El programa de asistencia ya está en marcha en su ordenador.",
    connecting: "Conectando…",
    ready: "Listo. Cuando el técnico pida ver su pantalla, se le preguntará aquí.",
    sharing: "Compartiendo su pantalla con {names}. Nadie puede controlarla.",
    paused: "En pausa: no se comparte nada.",
    stopped: "Ha dejado de compartir. El técnico ya no ve nada.",
    ended: "La sesión ha terminado.",
    closed: "Se dejó de compartir desde este navegador: {reason}",
    ask_title: "¿Puede {name} ver su pantalla?",
    ask_who: "{name}, {level}, para el caso {case} de {organisation}.",
    ask_words: "Palabras de verificación: {words} (cifras {digits}). El técnico le lee las mismas palabras por teléfono; si no coinciden, diga que no.",
    ask_view_only: "Verá la pantalla que elija a continuación y no podrá controlarla. Puede parar en cualquier momento.",
    ask_recorded: "Esta sesión se graba.",
    yes: "Sí, mostrar mi pantalla",
    no: "No",
    stop: "Dejar de compartir",
    refused: "Ha dicho que no: {name} no ve su pantalla.",
    no_screen: "No se eligió ninguna pantalla, así que no se comparte nada.",
  },
};

let share = null;
let box = null;
let status = { key: "intro", params: {} };
const questions = new Map(); // slot -> {request, readback, element}

const $ = (id) => document.getElementById(id);

function text(key, params = {}) {
  const table = TEXTS[getLanguage()] ?? TEXTS.en;
  const template = table[key] ?? TEXTS.en[key];
  return template.replace(/\{([a-z_]+)\}/g, (whole, name) => (Object.hasOwn(params, name) ? String(params[name]) : whole));
}

function element(tag, attributes = {}, content = "") {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) el.setAttribute(name, value);
  el.textContent = content;
  return el;
}

/**
 * The share-from-this-browser session, for diagnostics and tests (measurements included). The
 * page never shows them: the page may itself be on the shared screen, and a counter that
 * changed with every update would make the next update.
 */
export function currentShare() {
  return share;
}

export function shareStats() {
  return share ? structuredClone(share.stats) : null;
}

function supported() {
  return (
    typeof navigator.mediaDevices?.getDisplayMedia === "function" &&
    typeof OffscreenCanvas === "function" &&
    typeof OffscreenCanvas.prototype.convertToBlob === "function" &&
    Boolean(globalThis.crypto?.subtle)
  );
}

function mount() {
  if (box || !live.joined?.agent_token) return;
  box = element("section", { class: "agent share", id: "share-box", "aria-labelledby": "share-title" });
  box.append(
    element("h2", { id: "share-title" }),
    element("p", { id: "share-intro" }),
    element("button", { type: "button", class: "primary", id: "share-btn" }),
    element("p", { id: "share-status", class: "hint", role: "status", "aria-live": "polite" }),
    element("div", { id: "share-asking", "aria-live": "assertive" }),
    element("button", { type: "button", id: "share-stop", hidden: "" }),
  );
  const anchor = $("agent-box");
  anchor.after(box);
  $("share-btn").addEventListener("click", startShare);
  $("share-stop").addEventListener("click", () => {
    share?.stopSharing();
    setStatus("stopped");
  });
  onLanguageChange(draw);
  draw();
}

async function startShare() {
  if (share || !supported()) return;
  const joined = live.joined;
  share = new BrowserShare({ sessionId: joined.session_id, caseNumber: joined.case_number, agentToken: joined.agent_token });
  share.addEventListener("change", draw);
  share.addEventListener("ask", (event) => showQuestion(event.detail));
  share.addEventListener("withdrawn", (event) => dropQuestion(event.detail.slot));
  share.addEventListener("closed", (event) => {
    setStatus(share.consent.ended ? "ended" : "closed", { reason: event.detail.reason });
    for (const slot of [...questions.keys()]) dropQuestion(slot);
    share = null;
    draw();
  });
  setStatus("connecting");
  try {
    await share.start();
  } catch (error) {
    share = null;
    setStatus("closed", { reason: error?.message ?? String(error) });
  }
}

function setStatus(key, params = {}) {
  status = { key, params };
  draw();
}

function engineerName(slot) {
  return share?.people.get(slot)?.display_name ?? `#${slot}`;
}

function draw() {
  if (!box) return;
  $("share-title").textContent = text("title");
  $("share-intro").textContent = text("intro");
  const button = $("share-btn");
  button.textContent = text("start");
  const agentHere = !share && live.people.has(AGENT_SLOT);
  button.hidden = share !== null;
  button.disabled = !supported() || agentHere || live.phase === "ended";
  const stop = $("share-stop");
  stop.textContent = text("stop");
  stop.hidden = !share?.sharing;
  let shown = status;
  if (!supported()) shown = { key: "unsupported", params: {} };
  else if (agentHere) shown = { key: "agent_here", params: {} };
  else if (share) {
    if (share.consent.ended) shown = { key: "ended", params: {} };
    else if (share.sharing && share.consent.paused) shown = { key: "paused", params: {} };
    else if (share.sharing) {
      shown = { key: "sharing", params: { names: share.consent.admitted().map(engineerName).join(", ") } };
    } else if (share.connected && ["connecting", "intro"].includes(status.key)) shown = { key: "ready", params: {} };
  }
  const line = $("share-status");
  line.dataset.state = shown.key;
  line.textContent = shown.key === "intro" ? "" : text(shown.key, shown.params);
  for (const entry of questions.values()) fillQuestion(entry);
}

function showQuestion({ request, readback }) {
  dropQuestion(request.slot);
  const el = element("div", { class: "share-question", role: "alertdialog", "data-slot": String(request.slot) });
  const title = element("h3", { class: "share-ask-title" });
  const who = element("p", { class: "share-ask-who" });
  const words = element("p", { class: "words share-ask-words" });
  const only = element("p", { class: "hint share-ask-view-only" });
  const recorded = element("p", { class: "hint share-ask-recorded" });
  const yes = element("button", { type: "button", class: "primary share-yes" });
  const no = element("button", { type: "button", class: "share-no" });
  const buttons = element("div", { class: "buttons" });
  buttons.append(yes, no);
  el.append(title, who, words, only, recorded, buttons);
  const entry = { request, readback, el, title, who, words, only, recorded, yes, no };
  yes.addEventListener("click", () => answer(entry, true));
  no.addEventListener("click", () => answer(entry, false));
  questions.set(request.slot, entry);
  $("share-asking").append(el);
  fillQuestion(entry);
  yes.focus();
}

function fillQuestion(entry) {
  const { request, readback } = entry;
  const name = request.engineer_name;
  const level = t(`level.${String(request.engineer_level).toLowerCase()}`);
  entry.title.textContent = text("ask_title", { name });
  entry.who.textContent = text("ask_who", { name, level, case: request.case_number, organisation: request.organisation });
  entry.words.dataset.words = readback.words.join(" ");
  entry.words.textContent = text("ask_words", {
    words: readback.words.join(" "),
    digits: `${readback.digits.slice(0, 3)} ${readback.digits.slice(3)}`,
  });
  entry.only.textContent = text("ask_view_only");
  entry.recorded.textContent = request.recorded ? text("ask_recorded") : "";
  entry.recorded.hidden = !request.recorded;
  entry.yes.textContent = text("yes");
  entry.no.textContent = text("no");
}

async function answer(entry, allow) {
  entry.yes.disabled = true;
  entry.no.disabled = true;
  const { request } = entry;
  const granted = await share.answer(request, allow);
  dropQuestion(request.slot);
  if (!allow) setStatus("refused", { name: request.engineer_name });
  else if (!granted) setStatus("no_screen");
  else setStatus("sharing");
}

function dropQuestion(slot) {
  const entry = questions.get(slot);
  if (!entry) return;
  entry.el.remove();
  questions.delete(slot);
}

function watch() {
  const view = $("session-view");
  if (!view) return;
  const check = () => {
    if (!view.hidden && live.joined) mount();
    draw();
  };
  new MutationObserver(check).observe(view, { attributes: true, attributeFilter: ["hidden"] });
  // The customer page's own state (an agent arriving, the end) changes what the button offers.
  setInterval(draw, 1000);
  check();
}

watch();
