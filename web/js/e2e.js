// End-to-end keys in the browser: the WebCrypto port of rsb_protocol/e2e.py (the viewer side,
// and the sender side for a customer page that shares its own screen: GroupSender).
//
// Same arithmetic as the Python agent, so the broker never holds a content key:
//   ECDH (X25519, or P-256 where the browser lacks it) -> HKDF-SHA256 (salt = session id,
//   info = label || epoch u32 || slot u16) -> AES-256-GCM with the 18-byte header as AAD.
// Private keys are generated non-extractable and live only in this page's memory.
// Receivers apply the replay rules of docs/protocol.md in order: parse, kind, epoch, seq, tag;
// the counter moves only after the tag verified, so a forged frame cannot skip it ahead.

import {
  AGENT_SLOT,
  BROADCAST_SLOT,
  Flags,
  FrameType,
  MAX_VIEWER_SLOT,
  ProtocolError,
  RECORDING_SLOT,
  U64_MAX,
  concatBytes,
  packHeader,
  parseEnvelope,
  typeName,
} from "./framing.js";
import { PUBLIC_KEY_SIZES } from "./wire.js";

const subtle = globalThis.crypto?.subtle;
const encoder = new TextEncoder();

const WRAP_INFO = encoder.encode("rsb v1 wrap");
const VIEWER_TO_AGENT_INFO = encoder.encode("rsb v1 viewer->agent");
const AGENT_TO_VIEWER_INFO = encoder.encode("rsb v1 agent->viewer");
const PAIRWISE_PREFIX = new Uint8Array(4); // one sender per key and epoch: seq alone is unique
const U32_MAX = 0xffffffff;

const PREFERENCE = ["x25519", "p256"];

/** Frame types the agent seals under the group key. */
export const GROUP_TYPES = new Set([
  FrameType.SCREEN_UPDATE,
  FrameType.KEYFRAME,
  FrameType.CURSOR,
  FrameType.CHAT,
]);

export const Side = Object.freeze({ AGENT: "agent", VIEWER: "viewer" });
const PAIRWISE_TYPES = {
  viewer: new Set([FrameType.INPUT, FrameType.CHAT]),
  agent: new Set([FrameType.CHAT]),
};

function requireSubtle() {
  if (!subtle) {
    // WebCrypto exists only in secure contexts: https, or http on localhost / 127.0.0.1.
    throw new ProtocolError("unsupported_algorithm", "WebCrypto is unavailable: open the console over https");
  }
  return subtle;
}

function webCryptoAlgorithm(algorithm) {
  if (algorithm === "x25519") return { name: "X25519" };
  if (algorithm === "p256") return { name: "ECDH", namedCurve: "P-256" };
  throw new ProtocolError("unsupported_algorithm", `unknown key algorithm ${algorithm}`);
}

let supportedCache = null;

/** The key algorithms this browser can use, preferred first (X25519 is missing in some). */
export async function supportedAlgorithms() {
  if (supportedCache) return supportedCache;
  const found = [];
  for (const algorithm of PREFERENCE) {
    try {
      await requireSubtle().generateKey(webCryptoAlgorithm(algorithm), false, ["deriveBits"]);
      found.push(algorithm);
    } catch (error) {
      if (error instanceof ProtocolError) throw error;
    }
  }
  if (!found.length) throw new ProtocolError("unsupported_algorithm", "this browser has neither X25519 nor P-256");
  supportedCache = found;
  return found;
}

/** Pick X25519 if both sides have it, else P-256 (rsb_protocol.e2e.negotiate). */
export function negotiate(ours, theirs) {
  for (const algorithm of PREFERENCE) {
    if (ours.includes(algorithm) && theirs.includes(algorithm)) return algorithm;
  }
  throw new ProtocolError("unsupported_algorithm", "no key algorithm in common");
}

/** A participant's public key: algorithm, raw bytes as announced, and the imported CryptoKey. */
export class PublicKey {
  constructor(algorithm, raw, key) {
    this.algorithm = algorithm;
    this.raw = raw;
    this.key = key;
  }

  /**
   * Import and check raw bytes: 32 (X25519) or 65 uncompressed 0x04||x||y (P-256).
   * @throws {ProtocolError} invalid_key, unsupported_algorithm
   */
  static async fromRaw(algorithm, raw) {
    const size = PUBLIC_KEY_SIZES[algorithm];
    if (size === undefined) throw new ProtocolError("unsupported_algorithm", `unknown key algorithm ${algorithm}`);
    const bytes = Uint8Array.from(raw);
    // Compressed points are not accepted by every browser; require the uncompressed form.
    if (bytes.length !== size || (algorithm === "p256" && bytes[0] !== 0x04)) {
      throw new ProtocolError("invalid_key", `${algorithm} public key of ${bytes.length} bytes`);
    }
    try {
      const key = await requireSubtle().importKey("raw", bytes, webCryptoAlgorithm(algorithm), true, []);
      return new PublicKey(algorithm, bytes, key);
    } catch (error) {
      if (error instanceof ProtocolError) throw error;
      throw new ProtocolError("invalid_key", `not a valid ${algorithm} public key`);
    }
  }

  equals(other) {
    return !!other && other.algorithm === this.algorithm && bytesEqual(other.raw, this.raw);
  }
}

/** An ephemeral key pair for one session; the private half cannot be exported. */
export class KeyPair {
  constructor(privateKey, publicKey) {
    this.privateKey = privateKey;
    this.public = publicKey;
  }

  get algorithm() {
    return this.public.algorithm;
  }

  /** Generate a pair of the first algorithm in `preference` this browser supports. */
  static async generate(preference = PREFERENCE) {
    const available = await supportedAlgorithms();
    const algorithm = preference.find((name) => available.includes(name));
    if (!algorithm) throw new ProtocolError("unsupported_algorithm", "no preferred algorithm is available");
    const pair = await requireSubtle().generateKey(webCryptoAlgorithm(algorithm), false, ["deriveBits"]);
    const raw = new Uint8Array(await requireSubtle().exportKey("raw", pair.publicKey));
    return new KeyPair(pair.privateKey, new PublicKey(algorithm, raw, pair.publicKey));
  }

  /**
   * ECDH with a peer: the 32-byte shared secret (equals Python's KeyPair.exchange).
   * @throws {ProtocolError} unsupported_algorithm, invalid_key (e.g. a low-order X25519 point)
   */
  async exchange(peer) {
    if (peer.algorithm !== this.algorithm) {
      throw new ProtocolError("unsupported_algorithm", `cannot combine ${this.algorithm} with ${peer.algorithm}`);
    }
    let bits;
    try {
      const params = { ...webCryptoAlgorithm(this.algorithm), public: peer.key };
      bits = new Uint8Array(await requireSubtle().deriveBits(params, this.privateKey, 256));
    } catch {
      throw new ProtocolError("invalid_key", "key agreement failed (low-order or invalid point)");
    }
    if (bits.every((byte) => byte === 0)) {
      throw new ProtocolError("invalid_key", "key agreement failed (low-order or invalid point)");
    }
    return bits;
  }
}

export function bytesEqual(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return false;
  return true;
}

export function sessionSalt(sessionId) {
  const salt = typeof sessionId === "string" ? encoder.encode(sessionId) : Uint8Array.from(sessionId);
  if (!salt.length) throw new ProtocolError("invalid_message", "session id must not be empty");
  return salt;
}

/** HKDF-SHA256 to `length` bytes (WebCrypto deriveBits, same output as cryptography's HKDF). */
export async function hkdf(secret, salt, info, length) {
  const ikm = await requireSubtle().importKey("raw", secret, "HKDF", false, ["deriveBits"]);
  const bits = await requireSubtle().deriveBits({ name: "HKDF", hash: "SHA-256", salt, info }, ikm, length * 8);
  return new Uint8Array(bits);
}

function epochSlot(epoch, slot) {
  const out = new Uint8Array(6);
  const view = new DataView(out.buffer);
  view.setUint32(0, epoch);
  view.setUint16(4, slot);
  return out;
}

async function deriveAesKey(secret, salt, label, epoch, slot, usages) {
  const raw = await hkdf(secret, salt, concatBytes(label, epochSlot(epoch, slot)), 32);
  return requireSubtle().importKey("raw", raw, { name: "AES-GCM" }, false, usages);
}

function seqNonce(prefix, seq) {
  const nonce = new Uint8Array(12);
  nonce.set(prefix, 0);
  new DataView(nonce.buffer).setBigUint64(4, seq);
  return nonce;
}

async function decrypt(key, iv, sealed, envelope) {
  try {
    const plain = await requireSubtle().decrypt({ name: "AES-GCM", iv, additionalData: envelope.header }, key, sealed);
    return new Uint8Array(plain);
  } catch {
    throw new ProtocolError(
      "decrypt_failed",
      `${typeName(envelope.type)} slot ${envelope.slot} epoch ${envelope.epoch} seq ${envelope.seq}: ` +
        "authentication tag does not verify",
    );
  }
}

function checkFresh(envelope, epoch, lastSeq) {
  if (epoch === 0 || envelope.epoch !== epoch) {
    throw new ProtocolError("unknown_epoch", `frame for epoch ${envelope.epoch}; the current epoch is ${epoch}`);
  }
  if (envelope.seq <= lastSeq) {
    throw new ProtocolError("replay", `sequence ${envelope.seq} is not above ${lastSeq}`);
  }
}

/**
 * Runs async steps one after another in call order. WebCrypto is asynchronous, and two frames
 * checked concurrently could both pass the sequence check before either advanced the counter.
 */
class Serial {
  constructor() {
    this.tail = Promise.resolve();
  }

  run(step) {
    const result = this.tail.then(step);
    this.tail = result.catch(() => undefined);
    return result;
  }
}

/**
 * Sender side of the group (rsb_protocol.e2e.GroupSender), for a customer page that is the
 * session's source: a fresh key and nonce prefix per epoch, wrapped to each admitted viewer
 * under HKDF(ECDH, "rsb v1 wrap" || epoch || slot), and every screen frame sealed once for all.
 * Start a new epoch when a viewer leaves or loses the view, and wrap it only to those who stay.
 * Calls take effect in call order (one queue), so the frames come out in sequence order.
 */
export class GroupSender {
  constructor(salt, keyPairs) {
    this.salt = salt;
    this.pairs = new Map(keyPairs.map((pair) => [pair.algorithm, pair]));
    if (!this.pairs.size) throw new ProtocolError("invalid_key", "the sender needs at least one key pair");
    this.epoch = 0;
    this.seq = 0n;
    this.groupKey = null; // raw bytes, kept only to wrap them to viewers
    this.prefix = null;
    this.key = null;
    this.serial = new Serial();
  }

  /** @param {KeyPair[]} keyPairs at most one per algorithm; starts epoch 1 */
  static async create(sessionId, keyPairs) {
    const sender = new GroupSender(sessionSalt(sessionId), keyPairs);
    await sender.newEpoch();
    return sender;
  }

  /** The public keys to announce for slot 0, one per algorithm. */
  get publicKeys() {
    return [...this.pairs.values()].map((pair) => pair.public);
  }

  /**
   * Draw a new group key and nonce prefix and restart the sequence.
   * @returns {Promise<number>} the new epoch: wrap it to every viewer who stays
   */
  newEpoch() {
    return this.serial.run(async () => {
      if (this.epoch === U32_MAX) throw new ProtocolError("sequence_exhausted", "no epoch numbers left");
      const groupKey = crypto.getRandomValues(new Uint8Array(32));
      const key = await requireSubtle().importKey("raw", groupKey, { name: "AES-GCM" }, false, ["encrypt"]);
      this.groupKey = groupKey;
      this.prefix = crypto.getRandomValues(new Uint8Array(4));
      this.key = key;
      this.epoch += 1;
      this.seq = 0n;
      return this.epoch;
    });
  }

  /**
   * The current group key wrapped to one viewer: a whole KEY_WRAP frame (header, 12-byte
   * random nonce, sealed key and prefix), exactly as the Python agent makes it.
   * @param {PublicKey} recipient @param {number} slot 1..RECORDING_SLOT
   * @returns {Promise<Uint8Array>}
   */
  wrapFor(recipient, slot) {
    return this.serial.run(async () => {
      if (!Number.isInteger(slot) || slot <= AGENT_SLOT || slot > RECORDING_SLOT) {
        throw new ProtocolError("unexpected_frame", `cannot wrap a key to slot ${slot}`);
      }
      const own = this.pairs.get(recipient.algorithm);
      if (!own) throw new ProtocolError("unsupported_algorithm", `the sender has no ${recipient.algorithm} key`);
      const secret = await own.exchange(recipient);
      const wrapKey = await deriveAesKey(secret, this.salt, WRAP_INFO, this.epoch, slot, ["encrypt"]);
      const header = packHeader(FrameType.KEY_WRAP, slot, this.epoch, 0, Flags.NONE);
      const iv = crypto.getRandomValues(new Uint8Array(12));
      const sealed = await requireSubtle().encrypt(
        { name: "AES-GCM", iv, additionalData: header },
        wrapKey,
        concatBytes(this.groupKey, this.prefix),
      );
      return concatBytes(header, iv, new Uint8Array(sealed));
    });
  }

  /**
   * Seal one frame under the group key, once for every viewer.
   * @param {number} type one of GROUP_TYPES
   * @param {Uint8Array} payload the plaintext (an update, a cursor, chat text)
   * @returns {Promise<{frame: Uint8Array, epoch: number, seq: bigint}>}
   */
  sealUpdate(type, payload, { slot = BROADCAST_SLOT, flags = Flags.NONE } = {}) {
    return this.serial.run(async () => {
      if (!GROUP_TYPES.has(type) || flags & Flags.PAIRWISE || slot === AGENT_SLOT) {
        throw new ProtocolError("unexpected_frame", `${typeName(type)} to slot ${slot} is not a group frame`);
      }
      if (this.seq === U64_MAX) throw new ProtocolError("sequence_exhausted", "sequence numbers of this epoch used up");
      this.seq += 1n;
      const { epoch, seq } = this;
      const header = packHeader(type, slot, epoch, seq, flags);
      const iv = seqNonce(this.prefix, seq);
      const sealed = await requireSubtle().encrypt({ name: "AES-GCM", iv, additionalData: header }, this.key, payload);
      return { frame: concatBytes(header, new Uint8Array(sealed)), epoch, seq };
    });
  }
}

/** Viewer side of the group: installs KEY_WRAP frames for its slot, opens group frames. */
export class GroupReceiver {
  constructor(salt, secret, slot) {
    this.salt = salt;
    this.secret = secret;
    this.slot = slot;
    this.epoch = 0;
    this.key = null;
    this.prefix = null;
    this.lastSeq = 0n;
    this.serial = new Serial();
  }

  /** @param {KeyPair} own @param {PublicKey} agent */
  static async create(sessionId, own, slot, agent) {
    return new GroupReceiver(sessionSalt(sessionId), await own.exchange(agent), slot);
  }

  /**
   * Unwrap a KEY_WRAP frame and make its epoch current; older epochs are refused afterwards.
   * @returns {Promise<number>} the epoch installed
   * @throws {ProtocolError} malformed_frame, unexpected_frame, replay, decrypt_failed, ...
   */
  installWrappedKey(data, maxSize) {
    return this.serial.run(async () => {
      const envelope = parseEnvelope(data, maxSize);
      if (envelope.type !== FrameType.KEY_WRAP || envelope.slot !== this.slot) {
        throw new ProtocolError("unexpected_frame", `${typeName(envelope.type)} to slot ${envelope.slot}`);
      }
      // Only a newer epoch: the broker must not be able to bring back an old key.
      if (envelope.epoch <= this.epoch) {
        throw new ProtocolError("replay", `epoch ${envelope.epoch} is not newer than ${this.epoch}`);
      }
      const wrapKey = await deriveAesKey(this.secret, this.salt, WRAP_INFO, envelope.epoch, this.slot, ["decrypt"]);
      const iv = envelope.payload.subarray(0, 12);
      const unwrapped = await decrypt(wrapKey, iv, envelope.payload.subarray(12), envelope);
      this.key = await requireSubtle().importKey("raw", unwrapped.subarray(0, 32), { name: "AES-GCM" }, false, [
        "decrypt",
      ]);
      this.prefix = unwrapped.slice(32, 36);
      this.epoch = envelope.epoch;
      this.lastSeq = 0n;
      return this.epoch;
    });
  }

  /**
   * Check and decrypt one group frame.
   * @returns {Promise<{envelope: object, plaintext: Uint8Array}>}
   * @throws {ProtocolError} unexpected_frame, unknown_epoch, replay, decrypt_failed, ...
   */
  open(data, maxSize) {
    return this.serial.run(async () => {
      const envelope = parseEnvelope(data, maxSize);
      if (!GROUP_TYPES.has(envelope.type) || envelope.flags & Flags.PAIRWISE) {
        throw new ProtocolError("unexpected_frame", `${typeName(envelope.type)} is not a group frame`);
      }
      // The recorder reads every frame the agent sent; a viewer only its own and broadcasts.
      if (this.slot !== RECORDING_SLOT && envelope.slot !== BROADCAST_SLOT && envelope.slot !== this.slot) {
        throw new ProtocolError("unexpected_frame", `frame for slot ${envelope.slot}, not ${this.slot}`);
      }
      checkFresh(envelope, this.epoch, this.lastSeq);
      const plaintext = await decrypt(this.key, seqNonce(this.prefix, envelope.seq), envelope.payload, envelope);
      this.lastSeq = envelope.seq;
      return { envelope, plaintext };
    });
  }
}

/**
 * One viewer <-> agent channel, a key and a counter per direction. INPUT needs it: a group key
 * cannot tell its holders apart, this one proves which viewer typed (docs/protocol.md).
 */
export class PairwiseChannel {
  constructor(salt, secret, viewerSlot, side) {
    this.salt = salt;
    this.secret = secret;
    this.slot = viewerSlot;
    this.side = side;
    const viewerSends = side === Side.VIEWER;
    this.sendInfo = viewerSends ? VIEWER_TO_AGENT_INFO : AGENT_TO_VIEWER_INFO;
    this.recvInfo = viewerSends ? AGENT_TO_VIEWER_INFO : VIEWER_TO_AGENT_INFO;
    this.peerTypes = PAIRWISE_TYPES[viewerSends ? Side.AGENT : Side.VIEWER];
    this.epoch = 0;
    this.serial = new Serial();
  }

  /**
   * @param {KeyPair} own @param {PublicKey} peer @param {number} viewerSlot 1..0xFFFD
   * @param {string} side Side.VIEWER in the console
   */
  static async create(sessionId, own, peer, viewerSlot, side, epoch = 1) {
    if (!Number.isInteger(viewerSlot) || viewerSlot < 1 || viewerSlot > MAX_VIEWER_SLOT) {
      throw new ProtocolError("unexpected_frame", `slot ${viewerSlot} is not a viewer slot`);
    }
    if (side !== Side.VIEWER && side !== Side.AGENT) throw new ProtocolError("invalid_message", `bad side ${side}`);
    const channel = new PairwiseChannel(sessionSalt(sessionId), await own.exchange(peer), viewerSlot, side);
    await channel.advanceEpoch(epoch);
    return channel;
  }

  /** Re-key both directions for a newer epoch and restart both counters. */
  advanceEpoch(epoch) {
    return this.serial.run(async () => {
      if (!Number.isInteger(epoch) || epoch <= this.epoch || epoch > U32_MAX) {
        throw new ProtocolError("unknown_epoch", `epoch ${epoch} is not after ${this.epoch}`);
      }
      const [send, recv] = await Promise.all([
        deriveAesKey(this.secret, this.salt, this.sendInfo, epoch, this.slot, ["encrypt"]),
        deriveAesKey(this.secret, this.salt, this.recvInfo, epoch, this.slot, ["decrypt"]),
      ]);
      this.send = send;
      this.recv = recv;
      this.epoch = epoch;
      this.sendSeq = 0n;
      this.recvSeq = 0n;
    });
  }

  /**
   * Seal one frame to the other end; PAIRWISE is always added.
   * @returns {Promise<Uint8Array>} the whole frame
   */
  seal(type, payload, flags = Flags.NONE) {
    return this.serial.run(async () => {
      if (!PAIRWISE_TYPES[this.side].has(type)) {
        throw new ProtocolError("unexpected_frame", `the ${this.side} does not send ${typeName(type)} pairwise`);
      }
      if (this.sendSeq === U64_MAX) throw new ProtocolError("sequence_exhausted", "sequence numbers of this epoch used up");
      this.sendSeq += 1n;
      const header = packHeader(type, this.slot, this.epoch, this.sendSeq, flags | Flags.PAIRWISE);
      const iv = seqNonce(PAIRWISE_PREFIX, this.sendSeq);
      const sealed = await requireSubtle().encrypt({ name: "AES-GCM", iv, additionalData: header }, this.send, payload);
      return concatBytes(header, new Uint8Array(sealed));
    });
  }

  /**
   * Check and decrypt one frame from the other end.
   * @returns {Promise<{envelope: object, plaintext: Uint8Array}>}
   */
  open(data, maxSize) {
    return this.serial.run(async () => {
      const envelope = parseEnvelope(data, maxSize);
      if (!this.peerTypes.has(envelope.type) || !(envelope.flags & Flags.PAIRWISE)) {
        throw new ProtocolError("unexpected_frame", `${typeName(envelope.type)} is not a pairwise frame from peer`);
      }
      if (envelope.slot !== this.slot) {
        throw new ProtocolError("unexpected_frame", `frame for slot ${envelope.slot}, not ${this.slot}`);
      }
      checkFresh(envelope, this.epoch, this.recvSeq);
      const plaintext = await decrypt(this.recv, seqNonce(PAIRWISE_PREFIX, envelope.seq), envelope.payload, envelope);
      this.recvSeq = envelope.seq;
      return { envelope, plaintext };
    });
  }
}
