// "Check my case" on the customer page: the case's status and its sessions, from the case
// number and the product's serial number together (POST /api/v1/status, no login). A wrong
// pair gets one answer, whichever field was wrong.

import { requestJson } from "./api.js";
import { errorText } from "./customer-errors.js";
import { formatTime, t } from "./i18n.js";

// Literal keys only, so tests/unit/test_i18n.py can check every one exists in both languages.
const CASE_STATUS_KEYS = {
  open: "case_status.open",
  in_progress: "case_status.in_progress",
  awaiting_customer: "case_status.awaiting_customer",
  resolved: "case_status.resolved",
  closed: "case_status.closed",
};
const SESSION_STATE_KEYS = {
  waiting: "session_state.waiting",
  active: "session_state.active",
  ended: "session_state.ended",
};

const $ = (id) => document.getElementById(id);

let check = null; // the last answer ({ok} or {error}), redrawn when the language changes

export async function onCheckSubmit(event) {
  event.preventDefault();
  const box = $("check-result");
  const submit = $("check-submit");
  submit.disabled = true;
  try {
    check = {
      ok: await requestJson("POST", "/api/v1/status", {
        body: {
          case_number: $("check-case").value.trim(),
          serial_number: $("check-serial").value.trim(),
        },
      }),
    };
  } catch (err) {
    check = { error: err };
  } finally {
    submit.disabled = false;
  }
  drawCheck(box);
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.append(td);
}

export function drawCheck(box = $("check-result")) {
  box.replaceChildren();
  if (check === null) {
    return;
  }
  if (check.error) {
    const p = document.createElement("p");
    p.className = "error";
    p.setAttribute("role", "alert");
    const err = check.error;
    if (err.status === 404) {
      p.textContent = t("check.not_found");
    } else if (err.status === 429) {
      p.textContent = t("check.err_rate");
    } else {
      p.textContent = t("check.err_other", { detail: errorText(err) });
    }
    box.append(p);
    return;
  }
  const status = check.ok;
  const summary = document.createElement("p");
  summary.className = "check-summary";
  summary.id = "check-summary";
  summary.dataset.status = status.status;
  summary.textContent = t("check.result", {
    case: status.case_number,
    product: status.product,
    status: t(CASE_STATUS_KEYS[status.status] ?? "case_status.open"),
  });
  const updated = document.createElement("p");
  updated.className = "hint";
  updated.textContent = t("check.updated", { when: formatTime(status.updated_at) });
  const heading = document.createElement("h3");
  heading.textContent = t("check.sessions");
  box.append(summary, updated, heading);
  if (status.sessions.length === 0) {
    const none = document.createElement("p");
    none.textContent = t("check.no_sessions");
    box.append(none);
    return;
  }
  const table = document.createElement("table");
  table.id = "check-sessions";
  const head = document.createElement("tr");
  for (const key of ["check.col_started", "check.col_engineer", "check.col_state", "check.col_ended"]) {
    const th = document.createElement("th");
    th.textContent = t(key);
    head.append(th);
  }
  const thead = document.createElement("thead");
  thead.append(head);
  const tbody = document.createElement("tbody");
  for (const session of status.sessions) {
    const row = document.createElement("tr");
    cell(row, formatTime(session.created_at));
    cell(row, session.engineer ?? t("check.no_engineer"));
    const stateKey = SESSION_STATE_KEYS[session.state];
    cell(row, stateKey ? t(stateKey) : session.state);
    cell(row, session.ended_at ? formatTime(session.ended_at) : "");
    tbody.append(row);
  }
  table.append(thead, tbody);
  box.append(table);
}
