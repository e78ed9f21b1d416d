// The customer page's attention notice: when an engineer asks to see the screen (a new
// engineer joined) or to take control, the page shows it at once in a notice fixed at the
// top of the window and moves the keyboard focus there, so a customer reading the chat or
// holding the phone notices it without looking for a line in the status list. It names who
// asks, what and why, says where to answer (the support program's window), and goes by
// itself when the request is answered; "I have seen it" hides it until the next request.

import { live } from "./customer-live.js";
import { forget, said, say } from "./customer-text.js";

const $ = (id) => document.getElementById(id);

const announced = new Set(); // request ids the notice has already drawn attention to
const dismissed = new Set(); // request ids the customer has acknowledged

function openRequests() {
  return live.connected && live.phase !== "ended" ? [...live.asking.values()] : [];
}

export function drawNotice() {
  const notice = $("notice");
  const list = $("notice-list");
  const waiting = openRequests().filter((request) => !dismissed.has(request.requestId));
  const fresh = waiting.some((request) => !announced.has(request.requestId));
  for (const request of waiting) {
    announced.add(request.requestId);
  }
  for (const item of list.children) {
    for (const child of item.children) {
      forget(child);
    }
  }
  list.replaceChildren(
    ...waiting.map((request) => {
      const item = document.createElement("li");
      item.dataset.permission = request.permission;
      const who = request.level ? said("status.person", { name: request.name, level: request.level }) : request.name;
      const what = document.createElement("strong");
      say(what, request.permission === "view" ? "asking.view" : "asking.control", { name: who });
      item.append(what);
      if (request.permission !== "view") {
        const why = document.createElement("span");
        why.className = "reason";
        say(why, request.reason ? "asking.reason" : "asking.no_reason", { reason: request.reason });
        item.append(" ", why);
      }
      return item;
    }),
  );
  notice.hidden = waiting.length === 0;
  if (fresh) {
    notice.focus();
  }
}

/** "I have seen it": hide the notice for the requests it shows now. */
export function dismissNotice() {
  for (const request of openRequests()) {
    dismissed.add(request.requestId);
  }
  drawNotice();
  $("state-text").scrollIntoView({ block: "center" });
}
