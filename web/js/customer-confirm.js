// The customer page's last step: after the end, is the problem solved? The answer, with an
// optional comment the engineers read as text, resolves the case or puts it back in progress
// (POST /api/v1/customer/confirm, with the customer token).

import { requestJson } from "./api.js";
import { errorMessage } from "./customer-errors.js";
import { live } from "./customer-live.js";
import { forgetSession } from "./customer-resume.js";
import { say, said } from "./customer-text.js";

const MAX_COMMENT = 2000;

const $ = (id) => document.getElementById(id);

export async function onFeedback(solved) {
  const result = $("feedback-result");
  const buttons = [$("solved-btn"), $("not-solved-btn")];
  for (const button of buttons) {
    button.disabled = true;
  }
  // Optional, sent with the answer; the engineers read it as text.
  const comment = $("feedback-comment").value.trim().slice(0, MAX_COMMENT);
  try {
    const answer = await requestJson("POST", "/api/v1/customer/confirm", {
      body: { solved, comment },
      token: live.joined.customer_token,
    });
    result.dataset.status = answer.status;
    say(result, solved ? "feedback.thanks_solved" : "feedback.thanks_not_solved", {
      case: answer.case_number,
    });
    forgetSession(); // answered: a reload starts afresh
  } catch (err) {
    delete result.dataset.status;
    say(result, "feedback.error", { detail: said(...errorMessage(err)) });
    if (err.status === 401 || err.status === 403) {
      forgetSession(); // the token no longer works, or the time to answer is over
    }
  } finally {
    for (const button of buttons) {
      button.disabled = false;
    }
  }
}
