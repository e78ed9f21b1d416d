// JSON control messages (WebSocket text frames), built and checked as rsb_protocol/messages.py
// does: {"v": 1, "type": ..., fields}. Every message the console sends is validated before it
// leaves, and every message it receives is validated before any handler sees it: unknown type,
// missing or extra field, wrong JSON type or out-of-range value are refused with a message that
// names the field. Screen, input and chat content never travel here (they are binary frames).

import { HEADER_SIZE, ProtocolError, WRAP_PAYLOAD_SIZE } from "./framing.js";
import { CONSENT_REASON_MAX, PROTOCOL_VERSION, PUBLIC_KEY_SIZES } from "./wire.js";

export const VERSION = PROTOCOL_VERSION;
export const MAX_CONTROL_SIZE = 64 * 1024;
const WRAP_FRAME = HEADER_SIZE + WRAP_PAYLOAD_SIZE;
const REQUIRED = Symbol("required");

function invalid(message) {
  return new ProtocolError("invalid_message", message);
}

function quote(value) {
  const text = JSON.stringify(value) ?? String(value);
  return text.length <= 40 ? text : `${text.slice(0, 37)}...`;
}

// --- base64 (standard alphabet, padded, canonical: one spelling per value) -------------------

export function b64encode(bytes) {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

export function b64decode(text) {
  if (typeof text !== "string" || text.length % 4 || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) {
    throw invalid("not valid base64");
  }
  const bytes = Uint8Array.from(atob(text), (ch) => ch.charCodeAt(0));
  if (b64encode(bytes) !== text) throw invalid("base64 is not in canonical form");
  return bytes;
}

// --- field checkers -------------------------------------------------------------------------

const integer = (lo, hi) => (where, value) => {
  // true is not a number in JSON, and a float is not an integer.
  if (typeof value !== "number" || !Number.isSafeInteger(value)) throw invalid(`${where}: expected an integer`);
  if (value < lo || value > hi) throw invalid(`${where}: ${quote(value)} is outside ${lo}..${hi}`);
  return value;
};

const string = (lo, hi, pattern = null) => (where, value) => {
  if (typeof value !== "string") throw invalid(`${where}: expected a string, got ${typeof value}`);
  if (value.length < lo || value.length > hi) throw invalid(`${where}: length ${value.length} is outside ${lo}..${hi}`);
  if (pattern && !pattern.test(value)) throw invalid(`${where}: ${quote(value)} does not match ${pattern.source}`);
  if (!value.isWellFormed()) throw invalid(`${where}: string is not valid Unicode`);
  return value;
};

const oneOf = (...allowed) => (where, value) => {
  if (!allowed.includes(value)) throw invalid(`${where}: ${quote(value)} is not one of ${allowed.join(", ")}`);
  return value;
};

const bool = (where, value) => {
  if (typeof value !== "boolean") throw invalid(`${where}: expected true or false`);
  return value;
};

const listOf = (item, lo, hi) => (where, value) => {
  if (!Array.isArray(value)) throw invalid(`${where}: expected a list`);
  if (value.length < lo || value.length > hi) throw invalid(`${where}: length ${value.length} is outside ${lo}..${hi}`);
  return value.map((element, i) => item(`${where}[${i}]`, element));
};

// As Python's str.isprintable: no control, format, surrogate, private-use or unassigned code
// points, and no separator but the plain space (rsb_protocol/messages.py, _printable).
const NOT_PRINTABLE = /[\p{C}\p{Zl}\p{Zp}]|(?! )\p{Zs}/u;

const printable = (lo, hi) => {
  const inner = string(lo, hi);
  return (where, value) => {
    inner(where, value);
    if (NOT_PRINTABLE.test(value)) throw invalid(`${where}: control or format characters are not allowed`);
    return value;
  };
};

/**
 * Free text made safe to show as one line, as rsb_protocol.messages.clean_text: whitespace runs
 * become one space, other control and format characters go, the ends are trimmed, and the
 * result is cut to `limit` characters.
 */
export function cleanText(text, limit) {
  const kept = [...String(text)]
    .map((ch) => (/\s/u.test(ch) ? " " : ch))
    .filter((ch) => ch === " " || !NOT_PRINTABLE.test(ch))
    .join("");
  // Cut by code point, as Python does: a cut between the halves of a surrogate pair would leave
  // text that is not valid Unicode.
  return [...kept.split(" ").filter(Boolean).join(" ")].slice(0, limit).join("").trimEnd();
}

const nullable = (inner) => (where, value) => (value === null ? null : inner(where, value));

const base64 = (lo, hi) => (where, value) => {
  if (typeof value !== "string" || value.length > 4 * (Math.floor(hi / 3) + 1)) {
    throw invalid(`${where}: base64 text longer than ${hi} bytes`);
  }
  let raw;
  try {
    raw = b64decode(value);
  } catch (error) {
    throw invalid(`${where}: ${error.message}`);
  }
  if (raw.length < lo || raw.length > hi) throw invalid(`${where}: ${raw.length} bytes, expected ${lo}..${hi}`);
  return value;
};

const u16 = integer(0, 0xffff);
const u32 = integer(0, 0xffffffff);
const u64 = integer(0, Number.MAX_SAFE_INTEGER); // JSON numbers beyond 2**53 lose digits in JS
const ident = string(1, 64, /^[A-Za-z0-9._:-]{1,64}$/);
const name = string(1, 200);
const reason = string(0, 500);
const text = string(0, 2000);
const role = oneOf("agent", "viewer", "customer", "broker");
const level = oneOf("L1", "L2", "L3");
const permission = oneOf("view", "control", "clipboard", "files", "system_info");
const algorithm = oneOf("x25519", "p256");
const source = oneOf("agent", "browser");

// type -> [[field, checker, default or REQUIRED], ...], in wire order.
const SCHEMAS = {
  hello: [
    ["role", role, REQUIRED],
    ["algorithms", listOf(algorithm, 1, 4), REQUIRED],
    ["software", name, REQUIRED],
    ["source", source, "agent"],
  ],
  join: [
    ["slot", u16, REQUIRED],
    ["participant", name, REQUIRED],
    ["display_name", name, REQUIRED],
    ["role", role, REQUIRED],
    ["level", nullable(level), null],
    ["source", source, "agent"],
  ],
  leave: [["slot", u16, REQUIRED], ["participant", name, REQUIRED], ["reason", reason, ""]],
  welcome: [
    ["slot", u16, REQUIRED],
    ["participant", name, REQUIRED],
    ["session_id", ident, REQUIRED],
    ["case_number", name, REQUIRED],
    ["organisation", name, REQUIRED],
  ],
  state: [["phase", ident, REQUIRED], ["viewing_slots", listOf(u16, 0, 64), []], ["controller_slot", nullable(u16), null]],
  consent_request: [
    ["request_id", ident, REQUIRED],
    ["slot", u16, REQUIRED],
    ["permission", permission, REQUIRED],
    ["engineer_name", name, REQUIRED],
    ["engineer_level", level, REQUIRED],
    ["case_number", name, REQUIRED],
    ["organisation", name, REQUIRED],
    ["recorded", bool, REQUIRED],
    ["reason", printable(0, CONSENT_REASON_MAX), ""],
  ],
  consent_grant: [["request_id", ident, REQUIRED], ["slot", u16, REQUIRED], ["permission", permission, REQUIRED]],
  consent_refuse: [
    ["request_id", ident, REQUIRED],
    ["slot", u16, REQUIRED],
    ["permission", permission, REQUIRED],
    ["reason", reason, ""],
  ],
  consent_revoke: [["slot", u16, REQUIRED], ["permission", permission, REQUIRED], ["reason", reason, ""]],
  control_request: [["request_id", ident, REQUIRED], ["slot", u16, REQUIRED], ["reason", reason, ""]],
  control_release: [["slot", u16, REQUIRED]],
  renew: [["token", string(16, 4096, /^[A-Za-z0-9._-]+$/), REQUIRED]],
  public_key: [["slot", u16, REQUIRED], ["algorithm", algorithm, REQUIRED], ["key", base64(32, 65), REQUIRED]],
  group_key: [["slot", u16, REQUIRED], ["epoch", u32, REQUIRED], ["wrapped", base64(WRAP_FRAME, WRAP_FRAME), REQUIRED]],
  ack: [["ref", ident, REQUIRED]],
  error: [["code", ident, REQUIRED], ["message", text, REQUIRED], ["ref", nullable(ident), null]],
  pause: [["by", role, REQUIRED], ["reason", reason, ""]],
  resume: [["by", role, REQUIRED]],
  end: [["by", role, REQUIRED], ["reason", reason, ""]],
  chat: [["slot", u16, REQUIRED], ["epoch", u32, REQUIRED], ["seq", u64, REQUIRED], ["size", u32, REQUIRED]],
};

// Fields added to a type after its first release, left off the wire while at their default
// (rsb_protocol.messages: ``sparse``), so a peer whose strict parser predates them still
// accepts every message that does not use them.
const SPARSE = { hello: ["source"], join: ["source"] };

// Rules spanning several fields, as the Python classes' _check_together.
const TOGETHER = {
  public_key(message) {
    if (b64decode(message.key).length !== PUBLIC_KEY_SIZES[message.algorithm]) {
      throw invalid(`public_key.key: ${message.algorithm} keys are ${PUBLIC_KEY_SIZES[message.algorithm]} bytes`);
    }
  },
  group_key(message) {
    const frame = b64decode(message.wrapped);
    const view = new DataView(frame.buffer);
    if (frame[1] !== 0x20 || view.getUint16(4) !== message.slot || view.getUint32(6) !== message.epoch) {
      throw invalid("group_key.wrapped: not a KEY_WRAP frame for this slot and epoch");
    }
  },
};

function validate(type, fields) {
  const schema = SCHEMAS[type];
  if (!schema) throw new ProtocolError("unknown_type", `unknown message type ${quote(type)}`);
  const known = new Set(schema.map(([field]) => field));
  const extra = Object.keys(fields).filter((field) => !known.has(field));
  if (extra.length) throw invalid(`${type}: unexpected field(s) ${quote(extra.sort())}`);
  const missing = schema.filter(([field, , dflt]) => dflt === REQUIRED && !(field in fields)).map(([f]) => f);
  if (missing.length) throw invalid(`${type}: missing field(s) ${missing.join(", ")}`);
  const message = { v: VERSION, type };
  for (const [field, check, dflt] of schema) {
    message[field] = field in fields ? check(`${type}.${field}`, fields[field]) : structuredClone(dflt);
  }
  TOGETHER[type]?.(message);
  return message;
}

/**
 * Build a message object, validated: {v, type, ...every field with defaults filled in}.
 * @throws {ProtocolError} unknown_type, invalid_message
 */
export function buildMessage(type, fields = {}) {
  return validate(type, fields);
}

/** The compact JSON text of a message, ready for ws.send. */
export function encodeMessage(type, fields = {}) {
  const message = buildMessage(type, fields);
  for (const field of SPARSE[type] ?? []) {
    const dflt = SCHEMAS[type].find(([name]) => name === field)[2];
    if (message[field] === dflt) delete message[field];
  }
  return JSON.stringify(message);
}

/**
 * Parse and validate one text frame.
 * @returns {object} {v, type, ...fields}
 * @throws {ProtocolError} too_large, version, unknown_type, invalid_message
 */
export function parseMessage(textFrame, maxSize = MAX_CONTROL_SIZE) {
  if (typeof textFrame !== "string") throw invalid("a control message is text");
  if (textFrame.length > maxSize) {
    throw new ProtocolError("too_large", `message of ${textFrame.length} exceeds the limit of ${maxSize}`);
  }
  let data;
  try {
    data = JSON.parse(textFrame);
  } catch (error) {
    throw invalid(`not valid JSON: ${error.message}`);
  }
  if (data === null || typeof data !== "object" || Array.isArray(data)) throw invalid("expected a JSON object");
  if (!("v" in data) || !("type" in data)) throw invalid("missing field 'v' or 'type'");
  const { v, type, ...fields } = data;
  integer(0, 0xffff)("v", v);
  if (v !== VERSION) throw new ProtocolError("version", `protocol version ${v} is not supported (${VERSION})`);
  if (typeof type !== "string") throw invalid("type: expected a string");
  return validate(type, fields);
}
