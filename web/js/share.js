// The customer page as the session's source: "Share my screen from this browser".
//
// The page does what the agent does, minus input (a page cannot type into the customer's
// system, so it is view only): it opens /ws/agent with the agent token (a subprotocol, never
// the URL), says hello with `source: "browser"`, announces its ephemeral keys, asks the
// customer itself (naming the engineer, level and case, with the read-back words), and for
// the engineers the customer admitted captures the screen (getDisplayMedia, only after a yes),
// finds the changed 64-pixel tiles, encodes them as JPEG (OffscreenCanvas.convertToBlob),
// seals them under the group key of the current epoch and sends them paced by the broker's
// ACK credits. The wire format, the key schedule and the flow control are the agent's
// (docs/protocol.md; agent_client/tiles.py, encoder.py, screen_loop.py, keyring.py), so the
// broker relays these frames exactly as an agent's and the console opens them the same way.
//
// The consent rules are the agent's own (agent_client/consent.py), the second enforcement
// point: frames only while an engineer this page admitted holds the key and nothing is paused;
// a new epoch whenever someone who could see stops seeing; requests for control are refused.

import { AGENT_SLOT, CUSTOMER_SLOT, DEFAULT_MAX_FRAME_SIZE, FrameType, RECORDING_SLOT, parseEnvelope, peekRoute } from "./framing.js";
import { GroupSender, KeyPair, PairwiseChannel, PublicKey, Side, supportedAlgorithms } from "./e2e.js";
import { b64decode, b64encode, encodeMessage, parseMessage } from "./messages.js";
import { readback } from "./readback.js";
import { AfterClose, afterClose, closeReason, openSocket, sendIfOpen, socketUrl } from "./socket.js";
import { CloseCode } from "./wire.js";

export const SOFTWARE = "rsb-browser-share/0.1";
export const DEFAULT_TILE = 64;
const WIRE_VERSION = 1;
const KIND_IDS = { keyframe: 0, delta: 1, refresh: 2 };
const CODEC_IDS = { "image/jpeg": 1, "image/png": 2 };
const UPDATE_HEADER = 8;
const REGION_HEADER = 13;
const MAX_SIDE = 4096;
const RECONNECT_DELAYS_MS = [500, 1000, 2000, 4000, 8000, 10000];
const MAX_KNOWN = 512;
const VIEW = "view";
const MAX_CHAT_CHARS = 4000;
const MAX_PAGE_KEYS = 32;
const PAGE_CHANNEL_EPOCH = 1; // the page never learns our epochs (docs/protocol.md, "Chat")

// --- tiles (agent_client/tiles.py) ----------------------------------------------------------

/** (rows, cols) of the tile grid covering a width x height frame. */
export function gridShape(width, height, tile = DEFAULT_TILE) {
  return [Math.ceil(height / tile), Math.ceil(width / tile)];
}

/**
 * Which tiles differ between two frames of one size, compared as 32-bit pixels.
 * @param {Uint32Array} prev @param {Uint32Array} cur width*height pixels each
 * @returns {{mask: Uint8Array, rows: number, cols: number, count: number}} mask[r*cols+c] = 1
 */
export function changedTiles(prev, cur, width, height, tile = DEFAULT_TILE) {
  if (prev.length !== cur.length || cur.length !== width * height) throw new Error("frames of different sizes");
  const [rows, cols] = gridShape(width, height, tile);
  const mask = new Uint8Array(rows * cols);
  let count = 0;
  for (let y = 0; y < height; y += 1) {
    const rowBase = Math.floor(y / tile) * cols;
    let i = y * width;
    for (let c = 0; c < cols; c += 1) {
      const end = Math.min(i + tile, (y + 1) * width);
      if (mask[rowBase + c]) {
        i = end;
        continue;
      }
      for (; i < end; i += 1) {
        if (prev[i] !== cur[i]) {
          mask[rowBase + c] = 1;
          count += 1;
          break;
        }
      }
      i = end;
    }
  }
  return { mask, rows, cols, count };
}

/**
 * Few rectangles that cover exactly the changed tiles: each horizontal run of a tile row, and
 * a run spanning the same columns as one in the row above extends that rectangle downwards.
 * Every separate JPEG carries its own headers, so fewer, larger images cost fewer bytes.
 * @returns {Array<{x:number, y:number, w:number, h:number}>} top to bottom, left to right
 */
export function mergeRuns(mask, rows, cols, width, height, tile = DEFAULT_TILE) {
  let open = new Map(); // "a:b" -> [firstRow, count]
  const finished = [];
  for (let r = 0; r < rows; r += 1) {
    const stillOpen = new Map();
    let c = 0;
    while (c < cols) {
      if (!mask[r * cols + c]) {
        c += 1;
        continue;
      }
      const a = c;
      while (c < cols && mask[r * cols + c]) c += 1;
      const span = `${a}:${c}`;
      const above = open.get(span);
      if (above) {
        open.delete(span);
        stillOpen.set(span, [above[0], above[1] + 1]);
      } else {
        stillOpen.set(span, [r, 1]);
      }
    }
    for (const [span, [first, n]] of open) finished.push([first, ...span.split(":").map(Number), n]);
    open = stillOpen;
  }
  for (const [span, [first, n]] of open) finished.push([first, ...span.split(":").map(Number), n]);
  finished.sort((p, q) => p[0] - q[0] || p[1] - q[1]);
  return finished.map(([row, a, b, n]) => {
    const x = a * tile;
    const y = row * tile;
    return { x, y, w: Math.min(b * tile, width) - x, h: Math.min((row + n) * tile, height) - y };
  });
}

/** The update's wire form (rsb_codec/wire.py): header, then each region and its image. */
export function serializeUpdate(kind, width, height, regions) {
  const total = UPDATE_HEADER + regions.reduce((sum, r) => sum + REGION_HEADER + r.data.length, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  view.setUint8(0, WIRE_VERSION);
  view.setUint8(1, KIND_IDS[kind]);
  view.setUint16(2, width);
  view.setUint16(4, height);
  view.setUint16(6, regions.length);
  let offset = UPDATE_HEADER;
  for (const r of regions) {
    view.setUint16(offset, r.x);
    view.setUint16(offset + 2, r.y);
    view.setUint16(offset + 4, r.w);
    view.setUint16(offset + 6, r.h);
    view.setUint8(offset + 8, CODEC_IDS[r.type]);
    view.setUint32(offset + 9, r.data.length);
    out.set(r.data, offset + REGION_HEADER);
    offset += REGION_HEADER + r.data.length;
  }
  return out;
}

// --- encoder (agent_client/encoder.py) ------------------------------------------------------

/**
 * Frames in, updates out, remembering what the viewers already have: a keyframe (the first
 * frame, a forced one, a size change, or more than `fullFrameRatio` of the tiles changed),
 * a delta of JPEG rectangles, or after `refreshAfter` unchanged frames the areas sent as JPEG
 * once more as PNG, because JPEG blurs the text an engineer has to read.
 */
export class TileEncoder {
  constructor({ quality = 0.75, tile = DEFAULT_TILE, fullFrameRatio = 0.6, refreshAfter = 10 } = {}) {
    this.quality = quality;
    this.tile = tile;
    this.fullFrameRatio = fullFrameRatio;
    this.refreshAfter = refreshAfter;
    this.reset();
  }

  reset() {
    this.prev = null;
    this.lossy = null;
    this.idle = 0;
  }

  /**
   * @param {OffscreenCanvas} canvas the frame, drawn; read only until the promise settles
   * @param {ImageData} image the same frame's pixels
   * @returns {Promise<{kind: string, bytes: Uint8Array, regions: number, encodeMs: number} | null>}
   */
  async encode(canvas, image, force = false) {
    const { width, height } = image;
    const pixels = new Uint32Array(image.data.buffer, image.data.byteOffset, width * height);
    const started = performance.now();
    if (force || !this.prev || this.prev.length !== pixels.length || this.width !== width) {
      return this.keyframe(canvas, pixels, width, height, started);
    }
    const { mask, rows, cols, count } = changedTiles(this.prev, pixels, width, height, this.tile);
    if (count === 0) {
      this.idle += 1;
      if (this.idle !== this.refreshAfter || !this.lossy.some(Boolean)) return null;
      const rects = mergeRuns(this.lossy, rows, cols, width, height, this.tile);
      this.lossy.fill(0);
      const regions = await Promise.all(rects.map((rect) => this.region(canvas, rect, "image/png")));
      return this.result("refresh", width, height, regions, started);
    }
    this.idle = 0;
    if (count > this.fullFrameRatio * rows * cols) return this.keyframe(canvas, pixels, width, height, started);
    const rects = mergeRuns(mask, rows, cols, width, height, this.tile);
    const regions = await Promise.all(rects.map((rect) => this.region(canvas, rect, "image/jpeg")));
    this.prev.set(pixels); // tiles outside the rectangles are equal: the whole frame is what they have
    for (let i = 0; i < mask.length; i += 1) this.lossy[i] |= mask[i];
    return this.result("delta", width, height, regions, started);
  }

  async keyframe(canvas, pixels, width, height, started) {
    this.prev = Uint32Array.from(pixels);
    this.width = width;
    const [rows, cols] = gridShape(width, height, this.tile);
    this.lossy = new Uint8Array(rows * cols).fill(1);
    this.idle = 0;
    const blob = await canvas.convertToBlob({ type: "image/jpeg", quality: this.quality });
    const data = new Uint8Array(await blob.arrayBuffer());
    return this.result("keyframe", width, height, [{ x: 0, y: 0, w: width, h: height, type: "image/jpeg", data }], started);
  }

  async region(canvas, rect, type) {
    const part = new OffscreenCanvas(rect.w, rect.h);
    part.getContext("2d").drawImage(canvas, rect.x, rect.y, rect.w, rect.h, 0, 0, rect.w, rect.h);
    const options = type === "image/jpeg" ? { type, quality: this.quality } : { type };
    const blob = await part.convertToBlob(options);
    return { ...rect, type, data: new Uint8Array(await blob.arrayBuffer()) };
  }

  result(kind, width, height, regions, started) {
    const bytes = serializeUpdate(kind, width, height, regions);
    return { kind, bytes, regions: regions.length, encodeMs: performance.now() - started };
  }
}

// --- credits (agent_client/screen_loop.py) --------------------------------------------------

/** Updates sent and not yet acknowledged in the current epoch: at most `window` in flight. */
export class Credits {
  constructor(window = 3) {
    this.window = window;
    this.epoch = 0;
    this.unacked = [];
  }

  get available() {
    return this.unacked.length < this.window;
  }

  newEpoch(epoch) {
    this.epoch = epoch;
    this.unacked = [];
  }

  sent(epoch, seq) {
    if (epoch !== this.epoch) this.newEpoch(epoch);
    this.unacked.push(seq);
  }

  /** An ACK covers every update of its epoch up to its seq; true if it freed a credit. */
  acked(epoch, seq) {
    if (epoch !== this.epoch) return false;
    const before = this.unacked.length;
    this.unacked = this.unacked.filter((sent) => sent > seq);
    return this.unacked.length < before;
  }

  forget() {
    this.unacked = [];
  }
}

// --- consent (agent_client/consent.py, view only) -------------------------------------------

/**
 * The customer's decisions as this page recorded them, per engineer slot. The broker enforces
 * consent too, but this page does not trust it: it shows frames only to whom it admitted.
 * Methods return a change: {send: [[type, fields]], ask, withdrawn: [], rekey, keyframe}.
 */
export class ShareConsent {
  constructor() {
    this.engineers = new Map(); // slot -> {participant, name, level, grant: requestId|null, confirmed}
    this.pending = new Map(); // slot -> request (view only: one per slot)
    this.paused = false;
    this.ended = false;
  }

  admitted() {
    if (this.ended) return [];
    return [...this.engineers].filter(([, e]) => e.grant !== null).map(([slot]) => slot).sort((a, b) => a - b);
  }

  framesAllowed() {
    return !this.paused && this.admitted().length > 0;
  }

  joined({ slot, participant, display_name: name, level }) {
    if (this.ended || slot === AGENT_SLOT || slot >= CUSTOMER_SLOT) return change();
    const known = this.engineers.get(slot);
    if (known && known.participant === participant) {
      Object.assign(known, { name, level });
      return change();
    }
    const dropped = known ? this.drop(slot) : change();
    this.engineers.set(slot, { participant, name, level, grant: null, confirmed: false });
    return dropped;
  }

  /** A dropped engineer may resume: the grant stays, the key moves on without them. */
  away(slot) {
    return change({ rekey: this.engineers.get(slot)?.grant != null });
  }

  left(slot) {
    return this.drop(slot);
  }

  observeState({ phase, viewing_slots: viewing }) {
    if (this.ended) return change();
    if (phase === "ended") return this.end();
    if (phase === "paused") return change();
    let out = change();
    for (const [slot, engineer] of this.engineers) {
      if (engineer.grant === null) continue;
      if (viewing.includes(slot)) engineer.confirmed = true;
      else if (engineer.confirmed) out = merge(out, this.lose(slot));
    }
    return out;
  }

  request(message) {
    if (this.ended) return change();
    const { request_id: id, slot, permission } = message;
    const engineer = this.engineers.get(slot);
    const refuse = (reason) => change({ send: [["consent_refuse", { request_id: id, slot, permission, reason }]] });
    if (!engineer) return refuse("no engineer has joined in that slot");
    if (message.engineer_name !== engineer.name || (engineer.level && engineer.level !== message.engineer_level)) {
      return refuse("the request does not name the engineer who joined");
    }
    if (permission !== VIEW) return refuse("the screen is shared from a browser: view only");
    if (engineer.grant === id) return change({ send: [["consent_grant", { request_id: id, slot, permission }]] });
    let out = engineer.grant !== null ? this.lose(slot) : change();
    const already = this.pending.has(slot);
    const pending = { ...message, participant: engineer.participant };
    this.pending.set(slot, pending);
    if (!already) out = merge(out, change({ ask: pending }));
    return out;
  }

  /** The customer's answer to a question shown; an answer to a withdrawn one does nothing. */
  answer(request, allow, reason = "") {
    const current = this.pending.get(request.slot);
    if (this.ended || !current || current.participant !== request.participant) return change();
    this.pending.delete(request.slot);
    const { request_id: id, slot, permission } = current;
    if (!allow) return change({ send: [["consent_refuse", { request_id: id, slot, permission, reason }]] });
    this.engineers.get(slot).grant = id; // recorded here before the broker hears it
    return change({ send: [["consent_grant", { request_id: id, slot, permission }]], rekey: true, keyframe: true });
  }

  /** Relayed (the customer page's buttons) or our own: always succeeds. */
  revoke(slot, { local = false, reason = "" } = {}) {
    if (this.ended) return change();
    const out = this.lose(slot);
    if (local) out.send.push(["consent_revoke", { slot, permission: VIEW, reason }]);
    return out;
  }

  revokeAll(reason) {
    let out = change();
    for (const slot of this.admitted()) out = merge(out, this.revoke(slot, { local: true, reason }));
    return out;
  }

  pause() {
    this.paused = true;
    return change();
  }

  resume() {
    if (!this.paused) return change();
    this.paused = false;
    return change({ keyframe: true });
  }

  end() {
    if (this.ended) return change();
    const withdrawn = [...this.pending.values()];
    this.ended = true;
    this.engineers.clear();
    this.pending.clear();
    return change({ withdrawn });
  }

  drop(slot) {
    const engineer = this.engineers.get(slot);
    this.engineers.delete(slot);
    const withdrawn = this.pending.has(slot) ? [this.pending.get(slot)] : [];
    this.pending.delete(slot);
    return change({ withdrawn, rekey: engineer?.grant != null });
  }

  lose(slot) {
    const withdrawn = this.pending.has(slot) ? [this.pending.get(slot)] : [];
    this.pending.delete(slot);
    const engineer = this.engineers.get(slot);
    if (!engineer || engineer.grant === null) return change({ withdrawn });
    engineer.grant = null;
    engineer.confirmed = false;
    return change({ withdrawn, rekey: true });
  }
}

function change(parts = {}) {
  return { send: [], ask: null, withdrawn: [], rekey: false, keyframe: false, ...parts };
}

function merge(a, b) {
  return {
    send: [...a.send, ...b.send],
    ask: b.ask ?? a.ask,
    withdrawn: [...a.withdrawn, ...b.withdrawn],
    rekey: a.rekey || b.rekey,
    keyframe: a.keyframe || b.keyframe,
  };
}

// --- capture --------------------------------------------------------------------------------

/**
 * The screen the customer picked, drawn frame by frame onto an OffscreenCanvas. Nothing is
 * captured before `choose`, which the page calls only after the customer said yes.
 */
export class ScreenCapture {
  constructor(stream) {
    this.stream = stream;
    this.track = stream.getVideoTracks()[0];
    this.video = document.createElement("video");
    this.video.muted = true;
    this.video.playsInline = true;
    this.video.srcObject = stream;
    this.canvas = null;
    this.ctx = null;
  }

  /** Ask the browser for a screen (its picker; the customer may cancel: it throws). */
  static async choose() {
    const scale = globalThis.devicePixelRatio || 1;
    const stream = await navigator.mediaDevices.getDisplayMedia({
      video: {
        width: { ideal: Math.min(MAX_SIDE, Math.round(screen.width * scale)) },
        height: { ideal: Math.min(MAX_SIDE, Math.round(screen.height * scale)) },
        frameRate: { ideal: 15, max: 15 },
      },
      audio: false,
    });
    const capture = new ScreenCapture(stream);
    await capture.video.play();
    return capture;
  }

  get live() {
    return this.track?.readyState === "live";
  }

  /** The newest frame's pixels, or null before the first frame arrived. */
  grab() {
    const width = Math.min(MAX_SIDE, this.video.videoWidth);
    const height = Math.min(MAX_SIDE, this.video.videoHeight);
    if (!width || !height) return null;
    if (!this.canvas || this.canvas.width !== width || this.canvas.height !== height) {
      this.canvas = new OffscreenCanvas(width, height);
      this.ctx = this.canvas.getContext("2d", { willReadFrequently: true, alpha: false });
    }
    this.ctx.drawImage(this.video, 0, 0, width, height);
    return { canvas: this.canvas, image: this.ctx.getImageData(0, 0, width, height) };
  }

  stop() {
    for (const track of this.stream.getTracks()) track.stop();
    this.video.srcObject = null;
  }
}

// --- the source -----------------------------------------------------------------------------

/**
 * Events: "change" (status, people, read-back), "ask" (a request to put to the customer),
 * "withdrawn" (a request whose question must close), "notice" ({code, message}),
 * "closed" ({code, reason}).
 */
export class BrowserShare extends EventTarget {
  /**
   * @param {{sessionId: string, caseNumber: string, agentToken: string, url?: string,
   *          maxFps?: number, window?: number, ackTimeoutMs?: number}} options
   */
  constructor({ sessionId, caseNumber, agentToken, url, maxFps = 15, window = 3, ackTimeoutMs = 5000 }) {
    super();
    this.sessionId = sessionId;
    this.caseNumber = caseNumber;
    this.token = agentToken;
    this.url = url ?? socketUrl("/ws/agent");
    this.minIntervalMs = 1000 / maxFps;
    this.ackTimeoutMs = ackTimeoutMs;
    this.consent = new ShareConsent();
    this.credits = new Credits(window);
    this.encoder = new TileEncoder();
    this.capture = null;
    this.sender = null;
    this.pairs = [];
    this.ws = null;
    this.welcome = null;
    this.phase = "connecting";
    this.people = new Map(); // slot -> join message
    this.keys = new Map(); // "slot:algorithm" -> PublicKey
    this.readback = null;
    this.force = true;
    this.kickResolve = null;
    this.loopRunning = false;
    this.reconnects = 0;
    this.closed = null;
    this.stopped = false;
    this.inbox = Promise.resolve();
    this.outbox = Promise.resolve();
    this.viewerChannels = new Map(); // slot -> {key, channel}, admitted engineers, this epoch
    this.pageChannels = new Map(); // page key (algorithm:base64) -> channel, for the page's life
    this.stats = { updates: 0, keyframes: 0, bytes: 0, frameBytes: 0, grabMs: [], encodeMs: [], sealMs: [], sizes: [] };
  }

  get connected() {
    return this.ws?.readyState === WebSocket.OPEN && this.welcome !== null;
  }

  get sharing() {
    return this.capture !== null && this.capture.live && this.consent.framesAllowed();
  }

  async start() {
    const algorithms = await supportedAlgorithms();
    this.algorithms = algorithms;
    // One pair per algorithm, as the agent holds, so a console without X25519 can use P-256.
    this.pairs = await Promise.all(algorithms.map((algorithm) => KeyPair.generate([algorithm])));
    this.sender = await GroupSender.create(this.sessionId, this.pairs);
    this.open();
  }

  open() {
    const ws = openSocket(this.url, this.token);
    this.ws = ws;
    this.welcome = null;
    ws.addEventListener("open", () => {
      this.sendText("hello", { role: "agent", algorithms: this.algorithms, software: SOFTWARE, source: "browser" });
      for (const pair of this.pairs) {
        this.sendText("public_key", { slot: AGENT_SLOT, algorithm: pair.algorithm, key: b64encode(pair.public.raw) });
      }
    });
    ws.addEventListener("message", (event) => {
      this.inbox = this.inbox.then(() => this.receive(event.data)).catch((error) => this.problem(error));
    });
    ws.addEventListener("close", (event) => this.onClose(ws, event));
    this.changed();
  }

  onClose(ws, event) {
    if (ws !== this.ws) return;
    this.welcome = null;
    const closed = { code: event.code, reason: closeReason(event) };
    if (afterClose(event.code) === AfterClose.RESUME && !this.stopped && !this.consent.ended && this.reconnects < RECONNECT_DELAYS_MS.length) {
      const delay = RECONNECT_DELAYS_MS[this.reconnects];
      this.reconnects += 1;
      this.people.clear();
      this.keys.clear();
      this.readback = null;
      this.emit("notice", { code: "reconnecting", message: closed.reason });
      setTimeout(() => this.open(), delay);
      this.changed();
      return;
    }
    this.closed = closed;
    this.finish();
    this.emit("closed", closed);
    this.changed();
  }

  /** The customer stops sharing (our button, or the browser's own "Stop sharing" bar). */
  stopSharing(reason = "stopped by the customer") {
    this.apply(this.consent.revokeAll(reason));
    this.capture?.stop();
    this.capture = null;
    this.changed();
  }

  /** Leave the session as a source: the page goes back to being only the customer's page. */
  close() {
    this.stopped = true;
    this.stopSharing();
    this.finish();
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000, "stopped sharing");
  }

  finish() {
    this.capture?.stop();
    this.capture = null;
    this.kick();
  }

  /**
   * The customer's answer to a question. A yes needs a screen: the browser's picker opens
   * here (a user gesture), and cancelling it is a no.
   */
  async answer(request, allow) {
    if (allow && !this.capture?.live) {
      try {
        this.capture = await ScreenCapture.choose();
        this.capture.track.addEventListener("ended", () => this.stopSharing("the customer stopped sharing"));
        this.encoder.reset();
      } catch (error) {
        this.emit("notice", { code: "capture_failed", message: error?.message ?? String(error) });
        this.apply(this.consent.answer(request, false, "no screen was chosen"));
        return false;
      }
    }
    this.apply(this.consent.answer(request, allow, allow ? "" : "declined by the customer"));
    if (allow) this.runLoop();
    return allow;
  }

  // --- outgoing -----------------------------------------------------------------------------

  sendText(type, fields) {
    return sendIfOpen(this.ws, encodeMessage(type, fields));
  }

  sendBinary(bytes) {
    return sendIfOpen(this.ws, bytes);
  }

  /** Carry out what the consent record decided: messages, questions, a new epoch, a keyframe. */
  apply(decided) {
    for (const [type, fields] of decided.send) this.sendText(type, fields);
    for (const request of decided.withdrawn) this.emit("withdrawn", request);
    if (decided.ask) this.askSoon(decided.ask);
    if (decided.rekey) this.rekey();
    if (decided.keyframe) this.force = true;
    this.kick();
    this.changed();
  }

  askSoon(request) {
    // The words the customer compares must cover the engineer's key: wait until it is here.
    if (!this.hasKey(request.slot)) return;
    this.updateReadback().then(() => this.emit("ask", { request, readback: this.readback }));
  }

  hasKey(slot) {
    return this.algorithms.some((algorithm) => this.keys.has(`${slot}:${algorithm}`));
  }

  keyFor(slot) {
    for (const algorithm of this.algorithms) {
      const key = this.keys.get(`${slot}:${algorithm}`);
      if (key) return key;
    }
    return null;
  }

  /**
   * A new epoch wrapped only to the admitted engineers whose key is known; queued behind the
   * frames already sealed, so no frame of the old epoch follows a wrap of the new one.
   */
  rekey() {
    const admitted = this.consent.admitted().filter((slot) => this.hasKey(slot));
    this.force = true;
    this.outbox = this.outbox.then(async () => {
      const epoch = await this.sender.newEpoch();
      this.credits.newEpoch(epoch);
      const channels = new Map();
      for (const slot of admitted) {
        const key = this.keyFor(slot);
        this.sendBinary(await this.sender.wrapFor(key, slot));
        // Chat from an engineer opens only under its own pairwise key of this epoch.
        const kept = this.viewerChannels.get(slot);
        if (kept && kept.key.equals(key)) {
          await kept.channel.advanceEpoch(epoch);
          channels.set(slot, kept);
        } else {
          const channel = await PairwiseChannel.create(this.sessionId, this.ownPair(key), key, slot, Side.AGENT, epoch);
          channels.set(slot, { key, channel });
        }
      }
      this.viewerChannels = channels;
    }).catch((error) => this.problem(error));
  }

  // --- incoming -----------------------------------------------------------------------------

  async receive(data) {
    if (typeof data !== "string") {
      this.onBinary(new Uint8Array(data));
      return;
    }
    let message;
    try {
      message = parseMessage(data);
    } catch (error) {
      if (error?.code === "version") this.ws.close(CloseCode.UNSUPPORTED_VERSION, "protocol version not supported");
      throw error;
    }
    await this.onText(message);
    this.changed();
  }

  async onText(message) {
    switch (message.type) {
      case "welcome":
        if (message.session_id !== this.sessionId || message.slot !== AGENT_SLOT) {
          this.ws.close(1008, "unexpected welcome");
          return;
        }
        this.welcome = message;
        this.reconnects = 0;
        this.rekey(); // a new epoch on every (re)connect, as the agent does
        break;
      case "state":
        this.phase = message.phase;
        this.apply(this.consent.observeState(message));
        break;
      case "join":
        if (message.slot === AGENT_SLOT) return;
        if (this.people.get(message.slot)?.participant !== message.participant) this.forgetKeys(message.slot);
        if (this.people.size < MAX_KNOWN || this.people.has(message.slot)) this.people.set(message.slot, message);
        this.readback = null;
        if (message.role === "viewer") this.apply(this.consent.joined(message));
        break;
      case "leave": {
        if (message.slot === AGENT_SLOT) return;
        const same = this.people.get(message.slot)?.participant === message.participant;
        this.people.delete(message.slot);
        this.forgetKeys(message.slot);
        if (message.slot === CUSTOMER_SLOT) break;
        this.apply(message.reason === "disconnected" && same ? this.consent.away(message.slot) : this.consent.left(message.slot));
        break;
      }
      case "public_key":
        await this.onPublicKey(message);
        break;
      case "consent_request":
        this.apply(this.consent.request(message));
        break;
      case "consent_revoke":
        if (message.permission === VIEW) this.apply(this.consent.revoke(message.slot));
        break;
      case "pause":
        if (message.by !== "agent") this.apply(this.consent.pause());
        break;
      case "resume":
        if (message.by !== "agent") this.apply(this.consent.resume());
        break;
      case "end":
        this.apply(this.consent.end());
        this.finish();
        break;
      case "error":
        this.emit("notice", { code: message.code, message: message.message });
        break;
      default:
        break;
    }
  }

  async onPublicKey(message) {
    const { slot } = message;
    if (slot === AGENT_SLOT) return; // our own, echoed
    const key = await PublicKey.fromRaw(message.algorithm, b64decode(message.key));
    if (slot !== RECORDING_SLOT && !this.people.has(slot)) return; // nobody joined there
    const index = `${slot}:${message.algorithm}`;
    if (!this.keys.has(index) && this.keys.size >= MAX_KNOWN) return;
    if (slot !== RECORDING_SLOT && slot !== CUSTOMER_SLOT) {
      for (const other of [...this.keys.keys()]) if (other.startsWith(`${slot}:`)) this.keys.delete(other);
    }
    const changed = !key.equals(this.keys.get(index));
    this.keys.set(index, key);
    if (!changed) return;
    this.readback = null;
    await this.updateReadback();
    for (const request of this.consent.pending.values()) if (request.slot === slot) this.askSoon(request);
    if (this.consent.admitted().includes(slot)) this.rekey(); // back after a drop: wrap to it
  }

  onBinary(data) {
    const { type, slot } = peekRoute(data);
    if (type === FrameType.ACK || type === FrameType.KEYFRAME_REQUEST) {
      const envelope = parseEnvelope(data, DEFAULT_MAX_FRAME_SIZE);
      if (type === FrameType.ACK) {
        if (this.credits.acked(envelope.epoch, envelope.seq)) this.kick();
      } else {
        this.force = true;
        this.kick();
      }
    }
    if (type === FrameType.CHAT) {
      this.outbox = this.outbox.then(() => this.relayChat(slot, data)).catch((error) => this.problem(error));
    }
    // INPUT cannot be honoured by a page: it is dropped.
  }

  ownPair(key) {
    return this.pairs.find((pair) => pair.algorithm === key.algorithm);
  }

  /** The chat channel of the customer page connected now (its key is the broker's slot 0xFFFD). */
  async pageChannel() {
    const key = this.keyFor(CUSTOMER_SLOT);
    if (!key || !this.people.has(CUSTOMER_SLOT)) return null;
    const index = `${key.algorithm}:${b64encode(key.raw)}`;
    if (!this.pageChannels.has(index)) {
      // Kept for the page's life: rebuilt for the same key, its counters would restart.
      if (this.pageChannels.size >= MAX_PAGE_KEYS) return null;
      const channel = PairwiseChannel.create(this.sessionId, this.ownPair(key), key, CUSTOMER_SLOT, Side.AGENT, PAGE_CHANNEL_EPOCH);
      this.pageChannels.set(index, channel);
    }
    return this.pageChannels.get(index);
  }

  /**
   * The source is the hub of chat, as the agent is (agent_client/chat_relay.py): the page's
   * lines go on to the engineers under the group key, an engineer's to the page, named.
   */
  async relayChat(slot, data) {
    const decoder = new TextDecoder();
    if (slot === CUSTOMER_SLOT) {
      const channel = await this.pageChannel();
      if (!channel) return;
      const { plaintext } = await channel.open(data, DEFAULT_MAX_FRAME_SIZE);
      // Only engineers who may see the screen hold the group key: otherwise nobody could read it.
      if (!this.consent.framesAllowed() || !this.consent.admitted().some((s) => this.hasKey(s))) return;
      const text = decoder.decode(plaintext).slice(0, MAX_CHAT_CHARS);
      const sealed = await this.sender.sealUpdate(FrameType.CHAT, new TextEncoder().encode(text));
      this.sendBinary(sealed.frame);
      return;
    }
    const kept = this.viewerChannels.get(slot);
    if (!kept) return; // only admitted engineers have a channel
    const { plaintext } = await kept.channel.open(data, DEFAULT_MAX_FRAME_SIZE);
    const name = this.people.get(slot)?.display_name ?? `slot ${slot}`;
    const text = decoder.decode(plaintext).slice(0, MAX_CHAT_CHARS);
    this.emit("chat", { from: name, text });
    const channel = await this.pageChannel();
    if (!channel) return;
    const payload = new TextEncoder().encode(JSON.stringify({ from: name, text }));
    this.sendBinary(await channel.seal(FrameType.CHAT, payload));
  }

  forgetKeys(slot) {
    for (const index of [...this.keys.keys()]) if (index.startsWith(`${slot}:`)) this.keys.delete(index);
    this.readback = null;
  }

  /** The read-back words over every key this page knows, exactly as the agent counts them. */
  async updateReadback() {
    if (this.readback) return;
    const keys = this.pairs.map((pair) => pair.public);
    for (const [index, key] of this.keys) {
      const slot = Number(index.split(":")[0]);
      if (slot === RECORDING_SLOT || this.people.has(slot)) keys.push(key);
    }
    this.readback = await readback(this.sessionId, keys);
  }

  // --- the screen loop ----------------------------------------------------------------------

  kick() {
    const resolve = this.kickResolve;
    this.kickResolve = null;
    resolve?.(true);
  }

  wait(timeoutMs) {
    return new Promise((resolve) => {
      this.kickResolve = resolve;
      if (timeoutMs !== null) setTimeout(() => resolve(false), timeoutMs);
    });
  }

  mayCapture() {
    return this.connected && this.capture?.live && this.consent.framesAllowed() && this.consent.admitted().some((slot) => this.hasKey(slot));
  }

  async runLoop() {
    if (this.loopRunning) return;
    this.loopRunning = true;
    let nextAt = performance.now();
    try {
      while (this.capture && !this.consent.ended) {
        if (!this.mayCapture()) {
          this.force = true;
          await this.wait(1000);
          continue;
        }
        if (!this.credits.available) {
          if (!(await this.wait(this.ackTimeoutMs)) && !this.credits.available) {
            this.credits.forget(); // the ACKs were lost: start over from a keyframe
            this.force = true;
          }
          continue;
        }
        const delay = nextAt - performance.now();
        if (delay > 0) {
          await this.wait(delay);
          continue;
        }
        const started = performance.now();
        await this.sendOne();
        nextAt = started + Math.max(this.minIntervalMs, 2 * (performance.now() - started));
      }
    } finally {
      this.loopRunning = false;
    }
  }

  async sendOne() {
    const force = this.force;
    this.force = false;
    const grabStart = performance.now();
    const frame = this.capture.grab();
    if (!frame) return;
    const grabMs = performance.now() - grabStart;
    const update = await this.encoder.encode(frame.canvas, frame.image, force);
    if (!update) return;
    // Consent may have gone while encoding: this frame never leaves the page.
    if (!this.mayCapture()) {
      this.force = true;
      return;
    }
    if (this.force && update.kind !== "keyframe") return; // a keyframe was asked for meanwhile
    const type = update.kind === "keyframe" ? FrameType.KEYFRAME : FrameType.SCREEN_UPDATE;
    const sealStart = performance.now();
    // Behind any re-key already queued: the frame is sealed under the epoch its wrap announced.
    const sent = this.outbox.then(async () => {
      if (!this.mayCapture()) return null;
      const sealed = await this.sender.sealUpdate(type, update.bytes);
      if (!this.sendBinary(sealed.frame)) return null;
      this.credits.sent(sealed.epoch, sealed.seq);
      return sealed;
    });
    this.outbox = sent.catch(() => null); // the chain itself never rejects
    const sealed = await sent.catch((error) => {
      this.problem(error);
      return null;
    });
    if (!sealed) {
      this.force = true; // whoever sees the next frame must start from a whole one
      return;
    }
    const s = this.stats;
    s.updates += 1;
    if (update.kind === "keyframe") s.keyframes += 1;
    s.bytes += sealed.frame.length;
    s.frameBytes += update.bytes.length;
    record(s.grabMs, grabMs);
    record(s.encodeMs, update.encodeMs);
    record(s.sealMs, performance.now() - sealStart);
    record(s.sizes, sealed.frame.length);
    this.changed();
  }

  // --- events -------------------------------------------------------------------------------

  problem(error) {
    this.emit("notice", { code: error?.code ?? "error", message: error?.message ?? String(error) });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  changed() {
    this.emit("change", {});
  }
}

function record(list, value) {
  list.push(value);
  if (list.length > 2000) list.shift();
}
