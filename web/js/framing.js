// Binary frame envelope: the browser port of rsb_protocol/framing.py, byte for byte.
//
// Header, big-endian, 18 bytes (struct ">BBBBHIQ"):
//   0 magic_ver (0xB1) | 1 type | 2 flags | 3 reserved (0) | 4 slot u16 | 6 epoch u32 | 10 seq u64
// The whole header is the AEAD associated data (docs/protocol.md, "Header"), so e2e.js passes
// `header` exactly as received. No crypto and no I/O here. The numbers (sizes, slots, frame
// types, flags) come from wire.js, generated from rsb_protocol/framing.py.

import {
  AGENT_SLOT,
  BROADCAST_SLOT,
  CUSTOMER_SLOT,
  DEFAULT_MAX_FRAME_SIZE,
  Flags,
  FrameType,
  HEADER_SIZE,
  MAX_VIEWER_SLOT,
  PROTOCOL_VERSION,
  RECORDING_SLOT,
  TAG_SIZE,
  WRAP_PAYLOAD_SIZE,
} from "./wire.js";

export {
  AGENT_SLOT,
  BROADCAST_SLOT,
  CUSTOMER_SLOT,
  DEFAULT_MAX_FRAME_SIZE,
  Flags,
  FrameType,
  HEADER_SIZE,
  MAX_VIEWER_SLOT,
  RECORDING_SLOT,
  TAG_SIZE,
  WRAP_PAYLOAD_SIZE,
};

export const VERSION = PROTOCOL_VERSION;
const MAGIC = 0xb0;
const MAGIC_VERSION = MAGIC | VERSION;

const U32_MAX = 0xffffffff;
export const U64_MAX = 0xffffffffffffffffn;

const TYPE_NAMES = new Map(Object.entries(FrameType).map(([name, code]) => [code, name]));

/** Types whose payload is empty: the broker reads and sends them for flow control. */
export const CLEAR_TYPES = new Set([FrameType.ACK, FrameType.KEYFRAME_REQUEST]);

const KNOWN_FLAGS = Flags.MORE | Flags.PAIRWISE;

/**
 * A refused input. `code` matches rsb_protocol.errors (too_large, version, malformed_frame,
 * invalid_message, unknown_type, invalid_key, unexpected_frame, unknown_epoch, replay,
 * decrypt_failed, ...), so the console and the Python side speak of failures the same way.
 */
export class ProtocolError extends Error {
  constructor(code, message) {
    super(message);
    this.name = "ProtocolError";
    this.code = code;
  }
}

export function typeName(code) {
  return TYPE_NAMES.get(code) ?? `0x${code.toString(16).padStart(2, "0")}`;
}

function asBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new ProtocolError("malformed_frame", "a frame must be bytes");
}

/**
 * Pack the 18-byte header (also the AEAD associated data).
 * @param {number} type  a FrameType code
 * @param {number} slot  0..0xFFFF
 * @param {number} epoch 0..2**32-1
 * @param {bigint|number} seq 0..2**64-1
 * @param {number} flags Flags bits this version defines
 * @returns {Uint8Array}
 */
export function packHeader(type, slot, epoch, seq, flags = Flags.NONE) {
  const bigSeq = BigInt(seq);
  if (!TYPE_NAMES.has(type)) throw new ProtocolError("malformed_frame", `unknown frame type ${type}`);
  if (!Number.isInteger(slot) || slot < 0 || slot > BROADCAST_SLOT) {
    throw new ProtocolError("malformed_frame", `slot ${slot} out of range`);
  }
  if (!Number.isInteger(epoch) || epoch < 0 || epoch > U32_MAX) {
    throw new ProtocolError("malformed_frame", `epoch ${epoch} out of range`);
  }
  if (bigSeq < 0n || bigSeq > U64_MAX) {
    throw new ProtocolError("malformed_frame", `sequence ${seq} out of range`);
  }
  if (flags & ~KNOWN_FLAGS) {
    throw new ProtocolError("malformed_frame", `unknown flags 0x${flags.toString(16)}`);
  }
  const header = new Uint8Array(HEADER_SIZE);
  const view = new DataView(header.buffer);
  view.setUint8(0, MAGIC_VERSION);
  view.setUint8(1, type);
  view.setUint8(2, flags);
  view.setUint8(3, 0);
  view.setUint16(4, slot);
  view.setUint32(6, epoch);
  view.setBigUint64(10, bigSeq);
  return header;
}

function checkMagic(magicVer) {
  if ((magicVer & 0xf0) !== MAGIC) {
    throw new ProtocolError(
      "malformed_frame",
      `not an rsb frame (first byte 0x${magicVer.toString(16).padStart(2, "0")})`,
    );
  }
  throw new ProtocolError("version", `protocol version ${magicVer & 0x0f} is not supported (1)`);
}

/**
 * The type and slot only, as the broker routes: checks magic, version and type.
 * @returns {{type: number, slot: number}}
 */
export function peekRoute(data) {
  const bytes = asBytes(data);
  if (bytes.length < HEADER_SIZE) {
    throw new ProtocolError("malformed_frame", `frame of ${bytes.length} bytes is shorter than the header`);
  }
  if (bytes[0] !== MAGIC_VERSION) checkMagic(bytes[0]);
  if (!TYPE_NAMES.has(bytes[1])) {
    throw new ProtocolError("malformed_frame", `unknown frame type 0x${bytes[1].toString(16)}`);
  }
  return { type: bytes[1], slot: (bytes[4] << 8) | bytes[5] };
}

function checkPayloadSize(type, size) {
  if (CLEAR_TYPES.has(type)) {
    if (size) throw new ProtocolError("malformed_frame", `${typeName(type)} carries a payload of ${size} bytes`);
  } else if (type === FrameType.KEY_WRAP) {
    if (size !== WRAP_PAYLOAD_SIZE) {
      throw new ProtocolError("malformed_frame", `KEY_WRAP payload is ${size} bytes, not ${WRAP_PAYLOAD_SIZE}`);
    }
  } else if (size < TAG_SIZE) {
    throw new ProtocolError("malformed_frame", `${typeName(type)} payload of ${size} bytes has no tag`);
  }
}

/**
 * Parse and fully check one binary frame, as Envelope.parse does.
 * @param {ArrayBuffer|Uint8Array} data a whole binary WebSocket message
 * @param {number} maxSize largest accepted length, header included
 * @returns {{type:number, flags:number, slot:number, epoch:number, seq:bigint,
 *            header:Uint8Array, payload:Uint8Array}} views into `data` (not copies)
 */
export function parseEnvelope(data, maxSize = DEFAULT_MAX_FRAME_SIZE) {
  const bytes = asBytes(data);
  const size = bytes.length;
  if (size > maxSize) throw new ProtocolError("too_large", `frame of ${size} bytes exceeds the limit of ${maxSize}`);
  if (size < HEADER_SIZE) {
    throw new ProtocolError("malformed_frame", `frame of ${size} bytes is shorter than the header`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, HEADER_SIZE);
  const magicVer = view.getUint8(0);
  if (magicVer !== MAGIC_VERSION) checkMagic(magicVer);
  const type = view.getUint8(1);
  if (!TYPE_NAMES.has(type)) throw new ProtocolError("malformed_frame", `unknown frame type 0x${type.toString(16)}`);
  const flags = view.getUint8(2);
  if (flags & ~KNOWN_FLAGS) throw new ProtocolError("malformed_frame", `unknown flags 0x${flags.toString(16)}`);
  if (view.getUint8(3)) throw new ProtocolError("malformed_frame", "reserved header byte is not zero");
  const payload = bytes.subarray(HEADER_SIZE);
  checkPayloadSize(type, payload.length);
  return {
    type,
    flags,
    slot: view.getUint16(4),
    epoch: view.getUint32(6),
    seq: view.getBigUint64(10),
    header: bytes.subarray(0, HEADER_SIZE),
    payload,
  };
}

/** A whole clear frame (ACK or KEYFRAME_REQUEST): just the header. */
export function clearFrame(type, slot, epoch, seq) {
  if (!CLEAR_TYPES.has(type)) throw new ProtocolError("malformed_frame", `${typeName(type)} is not a clear type`);
  return packHeader(type, slot, epoch, seq, Flags.NONE);
}

export function concatBytes(...parts) {
  const total = parts.reduce((sum, part) => sum + part.length, 0);
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
