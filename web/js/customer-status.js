// The customer page's view of the live session: who the engineers are, one sentence for the
// session's phase, what is being asked and why, and which of the customer's buttons work now.
//
// Names and reasons come from the network (staff's free text): they are only ever set as
// text, never as markup, and a reason was made one short printable line when it arrived.

import { drawChat } from "./customer-chat.js";
import { closeMessage } from "./customer-errors.js";
import { drawHandoff } from "./customer-handoff.js";
import { engineerSlots, live } from "./customer-live.js";
import { drawNotice } from "./customer-notice.js";
import { drawReadback } from "./customer-readback.js";
import { forget, said, say, silence } from "./customer-text.js";
import { joinList, t } from "./i18n.js";

// Literal keys only, so tests/unit/test_i18n.py can check every one exists in both languages.
const LEVEL_KEYS = { L1: "level.l1", L2: "level.l2", L3: "level.l3" };

const $ = (id) => document.getElementById(id);

function levelText(level) {
  return t(LEVEL_KEYS[level] ?? "level.none");
}

/**
 * The session view once joined: the case and the command that starts the agent. The part
 * (`both`, `customer` on a phone that handed the agent part over, `agent` on the computer
 * that took it) decides what shows (body[data-part] in customer.css).
 */
export function showSession(joined) {
  const part = joined.part ?? "both";
  document.body.dataset.part = part;
  $("join-view").hidden = true;
  $("session-view").hidden = false;
  $("case-number").textContent = joined.case_number;
  $("part-note").hidden = part !== "agent";
  $("agent-cmd").textContent = joined.agent_token
    ? `RSB_AGENT_TOKEN=${joined.agent_token} rsb-agent attach --broker ${location.origin}`
    : "";
}

export async function copyAgentCommand() {
  const text = $("agent-cmd").textContent;
  try {
    await navigator.clipboard.writeText(text);
    say($("copy-status"), "agent.copied");
  } catch {
    const range = document.createRange();
    range.selectNodeContents($("agent-cmd"));
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    say($("copy-status"), "agent.copy_failed");
  }
}

/** The organisation's name, as the relay's welcome gave it (it replaces the default title). */
export function showOrganisation(name) {
  const org = $("org-name");
  delete org.dataset.i18n;
  org.textContent = name;
}

export function drawSession() {
  const joined = live.joined;
  if (joined === null) {
    return;
  }
  const engineer = joined.engineer ?? {};
  const name = engineer.display_name || t("status.engineer_fallback");
  // The engineers here now; until one joins, the one who has the session in hand (join
  // answer). An engineer who left is never named.
  const present = engineerSlots().map((slot) => live.people.get(slot));
  $("engineer").textContent =
    present.length > 0
      ? joinList(present.map((person) => t("session.engineer_value", { name: person.name, level: levelText(person.level) })))
      : t("session.engineer_value", { name, level: levelText(engineer.level) });
  $("ask-view").textContent = t("ask.view", { name });
  drawState();
  drawReadback();
}

function personLabel(slot) {
  const person = live.people.get(slot);
  if (person === undefined) {
    return t("status.engineer_fallback");
  }
  return person.level ? t("status.person", { name: person.name, level: person.level }) : person.name;
}

/** The status sentence as [key, params], from the last `state` the broker sent. */
function stateSentence() {
  if (live.refused !== null) {
    return ["status.refused", { detail: said(...closeMessage(live.refused)) }];
  }
  if (live.phase === "ended") {
    return ["status.ended", {}];
  }
  if (!live.connected) {
    return [live.retries > 0 ? "status.reconnecting" : "status.connecting", {}];
  }
  switch (live.phase) {
    case "waiting":
      return ["status.waiting", {}];
    case "pending_consent": {
      const asking = engineerSlots();
      if (asking.length === 0) {
        return ["status.pending_no_engineer", {}];
      }
      return ["status.pending", { names: joinList(asking.map(personLabel)) }];
    }
    case "observing":
      return ["status.observing", { names: joinList(live.viewing.map(personLabel)) }];
    case "controlling":
      return ["status.controlling", { name: personLabel(live.controller) }];
    case "paused":
      return ["status.paused", {}];
    default:
      return ["status.connecting", {}];
  }
}

export function drawState() {
  const [key, params] = stateSentence();
  const text = $("state-text");
  say(text, key, params);
  let shown = live.phase;
  if (live.refused !== null) {
    shown = "refused";
  } else if (!live.connected && shown !== "ended") {
    shown = live.retries > 0 ? "reconnecting" : "connecting";
  }
  text.dataset.phase = shown;

  const extra = $("state-extra");
  const others = live.viewing.filter((slot) => slot !== live.controller);
  if (live.connected && live.phase === "controlling" && others.length > 0) {
    extra.hidden = false;
    say(extra, "status.also_viewing", { names: joinList(others.map(personLabel)) });
  } else {
    extra.hidden = true;
    silence(extra);
  }
  drawAsking();
  drawControls();
  drawChat();
}

/**
 * What the engineers are asking right now and why, as the broker showed it (the same request
 * the support program prompts for). The reason is the engineer's free text: it is made one
 * short printable line again on arrival and only ever set as text, never as markup.
 */
export function drawAsking() {
  const list = $("asking");
  const open = live.connected && live.phase !== "ended" ? [...live.asking.values()] : [];
  for (const item of list.children) {
    for (const child of item.children) {
      forget(child);
    }
  }
  list.replaceChildren(
    ...open.map((request) => {
      const item = document.createElement("li");
      item.dataset.slot = String(request.slot);
      item.dataset.permission = request.permission;
      const who = request.level ? t("status.person", { name: request.name, level: request.level }) : request.name;
      const what = document.createElement("span");
      what.className = "what";
      say(what, request.permission === "view" ? "asking.view" : "asking.control", { name: who });
      item.append(what);
      if (request.permission !== "view") {
        const why = document.createElement("span");
        why.className = "reason";
        if (request.reason) {
          say(why, "asking.reason", { reason: request.reason });
        } else {
          say(why, "asking.no_reason");
        }
        item.append(why);
      }
      const where = document.createElement("span");
      where.className = "hint";
      say(where, "asking.where");
      item.append(" ", where);
      return item;
    }),
  );
  list.hidden = open.length === 0;
  drawNotice();
}

export function drawControls() {
  const ended = live.phase === "ended";
  const open = live.connected && !ended;
  const paused = live.phase === "paused";
  $("controls").hidden = ended;
  $("agent-box").hidden = ended;
  $("pause-btn").hidden = paused;
  $("resume-btn").hidden = !paused;
  $("pause-btn").disabled = !open || live.awaitingState;
  $("resume-btn").disabled = !open || live.awaitingState;
  $("revoke-control-btn").disabled = !open || live.controller === null;
  $("stop-viewing-btn").disabled = !open || (live.viewing.length === 0 && engineerSlots().length === 0);
  // Ending works without the socket too (POST /api/v1/customer/end).
  $("end-btn").disabled = ended || live.refused !== null;
  $("controls-note").hidden = open || ended;
  $("feedback").hidden = !ended;
  drawHandoff();
}
