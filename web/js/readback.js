// Read-back string: what the engineer reads to the customer on the phone, computed exactly as
// rsb_protocol/readback.py does. If both screens show the same digits and words, nobody (the
// broker included) swapped a public key in between (docs/protocol.md, "Read-back string").

import { concatBytes } from "./framing.js";
import { hkdf, sessionSalt } from "./e2e.js";
import { WORDS } from "./words.js";

const READBACK_INFO = new TextEncoder().encode("rsb v1 readback");

function entry(key) {
  const name = new TextEncoder().encode(key.algorithm);
  return concatBytes(Uint8Array.of(name.length), name, key.raw);
}

function compareBytes(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i += 1) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}

/**
 * Derive the read-back string over every participant's public key, in any order.
 * @param {string} sessionId the session id (UTF-8 salt)
 * @param {Array<{algorithm: string, raw: Uint8Array}>} publicKeys agent, viewers, recorder
 * @returns {Promise<{digits: string, words: string[], text: string}>}
 */
export async function readback(sessionId, publicKeys) {
  const salt = sessionSalt(sessionId);
  // Sorting makes the result independent of the order keys arrived in.
  const entries = publicKeys.map(entry).sort(compareBytes);
  if (!entries.length) throw new Error("a read-back string needs at least one key");
  const okm = await hkdf(concatBytes(...entries), salt, READBACK_INFO, 12);
  const number = new DataView(okm.buffer, okm.byteOffset, 8).getBigUint64(0);
  const digits = (number % 1000000n).toString().padStart(6, "0");
  const words = Array.from(okm.subarray(8, 12), (byte) => WORDS[byte]);
  return { digits, words, text: `${digits.slice(0, 3)} ${digits.slice(3)} / ${words.join(" ")}` };
}
