// What went wrong, in the customer's language: the broker's stable error codes (HTTP answers,
// broker/errors.py) and its WebSocket close codes (rsb_protocol/close_codes.py, through the
// generated wire.js) mapped to texts in i18n.js. The broker's own message is English and for
// engineers; the customer reads these instead (tests/unit/test_customer_texts.py checks that
// every code the broker can send has a text in both languages).

import { has, t } from "./i18n.js";
import { CloseCode, StandardCloseCode } from "./wire.js";

// Literal keys only, so tests/unit/test_i18n.py can check every one exists in both languages.
const ERROR_KEYS = {
  bad_request: "error.bad_request",
  validation_failed: "error.validation_failed",
  payload_too_large: "error.payload_too_large",
  request_timeout: "error.request_timeout",
  unsupported_version: "error.unsupported_version",
  unauthorized: "error.unauthorized",
  invalid_credentials: "error.invalid_credentials",
  invalid_token: "error.invalid_token",
  access_revoked: "error.access_revoked",
  token_expired: "error.token_expired",
  forbidden: "error.forbidden",
  confirm_window_closed: "error.confirm_window_closed",
  origin_rejected: "error.origin_rejected",
  not_found: "error.not_found",
  method_not_allowed: "error.method_not_allowed",
  unsupported_media_type: "error.unsupported_media_type",
  expectation_failed: "error.expectation_failed",
  conflict: "error.conflict",
  invalid_transition: "error.invalid_transition",
  consent_required: "error.consent_required",
  session_ended: "error.session_ended",
  view_only: "error.view_only",
  code_rejected: "error.code_rejected",
  agent_outdated: "error.agent_outdated",
  rate_limited: "error.rate_limited",
  overloaded: "error.overloaded",
  relay_unavailable: "error.relay_unavailable",
  flow_control: "error.flow_control",
  internal_error: "error.internal_error",
  http_error: "error.http_error",
  unreachable: "error.unreachable",
};

// Close codes by name, from wire.js (no module but wire.js writes a close code's number):
// the text of CloseCode.TOKEN_EXPIRED is "close.token_expired".
const CLOSE_NAMES = new Map(
  [...Object.entries(StandardCloseCode), ...Object.entries(CloseCode)].map(([name, code]) => [code, name.toLowerCase()]),
);

/** The i18n key and parameters for an ApiError from api.js (status 0: not reached). */
export function errorMessage(err) {
  const code = err?.status === 0 ? "unreachable" : String(err?.code ?? "");
  if (Object.hasOwn(ERROR_KEYS, code)) {
    return [ERROR_KEYS[code], {}];
  }
  return ["error.other", { detail: code || String(err?.status ?? "") }];
}

/** The i18n key and parameters for a WebSocket close code. */
export function closeMessage(code) {
  const key = `close.${CLOSE_NAMES.get(code)}`;
  return CLOSE_NAMES.has(code) && has(key) ? [key, {}] : ["close.other", { code: String(code) }];
}

/** An error's text in the current language (for texts that are built, not `say`d). */
export function errorText(err) {
  const [key, params] = errorMessage(err);
  return t(key, params);
}
