// What went wrong, in the customer's language: the broker's stable error codes (HTTP answers,
// broker/errors.py) and its WebSocket close codes (rsb_protocol/close_codes.py, through the
// generated wire.js) mapped to texts in i18n.js. The broker's own message is English and for
// engineers; the customer reads these instead (tests/unit/test_customer_texts.py checks that
// every code the broker can send has a text in both languages).

import { t } from "./i18n.js";

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

const CLOSE_KEYS = {
  1000: "close.1000",
  1001: "close.1001",
  1002: "close.1002",
  1003: "close.1003",
  1006: "close.1006",
  1007: "close.1007",
  1008: "close.1008",
  1009: "close.1009",
  1010: "close.1010",
  1011: "close.1011",
  1013: "close.1013",
  4001: "close.4001",
  4002: "close.4002",
  4003: "close.4003",
  4004: "close.4004",
  4005: "close.4005",
  4006: "close.4006",
  4007: "close.4007",
  4009: "close.4009",
  4029: "close.4029",
  4100: "close.4100",
  4101: "close.4101",
  4102: "close.4102",
  4103: "close.4103",
  4104: "close.4104",
  4105: "close.4105",
  4200: "close.4200",
  4201: "close.4201",
  4400: "close.4400",
  4404: "close.4404",
  4409: "close.4409",
  4422: "close.4422",
};

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
  if (Object.hasOwn(CLOSE_KEYS, code)) {
    return [CLOSE_KEYS[code], {}];
  }
  return ["close.other", { code: String(code) }];
}

/** An error's text in the current language (for texts that are built, not `say`d). */
export function errorText(err) {
  const [key, params] = errorMessage(err);
  return t(key, params);
}
