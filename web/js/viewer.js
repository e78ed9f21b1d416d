// The console's WebSocket client for one session: the browser twin of rsb_viewer/session.py.
//
// Connects to /ws/viewer/{id} with the staff token as a subprotocol (never in the URL, which
// ends up in logs), says hello, announces its own ephemeral key after welcome, installs the
// group key wrapped for its slot, decrypts and paints updates (ACK after each painted one),
// and seals INPUT and CHAT pairwise. Incoming messages are handled strictly one after another,
// so a key wrap is always installed before the frames sealed under it are opened. Bad frames
// are dropped and counted, never painted: they are the broker's or the network's doing and
// must not end the engineer's session.

import {
  AGENT_SLOT,
  DEFAULT_MAX_FRAME_SIZE,
  Flags,
  FrameType,
  ProtocolError,
  RECORDING_SLOT,
  clearFrame,
  peekRoute,
} from "./framing.js";
import { GroupReceiver, KeyPair, PairwiseChannel, PublicKey, Side, supportedAlgorithms } from "./e2e.js";
import { b64decode, b64encode, cleanText, encodeMessage, parseMessage } from "./messages.js";
import { readback } from "./readback.js";
import { parseCursor, parseUpdate } from "./screen.js";
import { AfterClose, afterClose, closeReason, openSocket, sendIfOpen, socketUrl } from "./socket.js";
import { CONSENT_REASON_MAX, CloseCode } from "./wire.js";

const SOFTWARE = "rsb-console/0.1";
const MAX_INPUT_SIZE = 16 * 1024;
const MAX_CHAT_BYTES = 4000;
const MAX_KNOWN = 512;
/** About 30 s in all, well inside the broker's default two-minute resume window. */
const RECONNECT_DELAYS_MS = [250, 1000, 2000, 4000, 8000, 15000];
/** How long to wait for a picture once we hold a key, before each keyframe request. */
// Delayed ACK (docs/protocol.md, "Flow control"): every second painted update is acknowledged
// at once, a lone one after ACK_DELAY_MS. An ACK covers every update up to its seq, so half the
// ACKs carry the same credit to the agent, and the relay handles a quarter fewer messages.
const ACK_EVERY = 2;
const ACK_DELAY_MS = 40;
const PICTURE_WAIT_MS = [2000, 4000, 8000]; // participants and keys kept, as rsb_viewer's MAX_KNOWN_KEYS

/**
 * Events: "change" (status, participants, keys, read-back), "chat" ({from, text, own}),
 * "notice" ({code, message}), "closed" ({code, reason}).
 */
export class Viewer extends EventTarget {
  /**
   * @param {{sessionId: string, token: string, screen: import("./screen.js").Screen,
   *          url?: string, maxFrameSize?: number}} options
   */
  constructor({ sessionId, token, screen, url, maxFrameSize = DEFAULT_MAX_FRAME_SIZE }) {
    super();
    this.sessionId = sessionId;
    this.token = token;
    this.screen = screen;
    this.url = url ?? socketUrl(`/ws/viewer/${encodeURIComponent(sessionId)}`);
    this.maxFrameSize = maxFrameSize;
    this.ws = null;
    this.own = null;
    this.welcome = null;
    this.phase = "connecting";
    this.viewingSlots = [];
    this.controllerSlot = null;
    this.participants = new Map(); // slot -> join message
    this.keys = new Map(); // "slot:algorithm" -> PublicKey
    this.receiver = null;
    this.receiverAgent = null;
    this.pairwise = null;
    this.pendingWrap = null;
    this.parts = [];
    this.pendingAck = null; // {epoch, seq, count} of painted updates not acknowledged yet
    this.ackTimer = null;
    this.wantKeyframe = false;
    this.controlPending = false;
    this.paused = false;
    this.ended = null;
    this.closed = null;
    this.readback = null;
    this.errors = [];
    this.framesDropped = 0;
    this.framesReceived = new Map(); // frame type -> count, for diagnostics
    this.keyframesAsked = 0; // by watchForPicture, for diagnostics
    this.pictureTimer = null;
    this.inbox = Promise.resolve();
    this.requestIds = 0;
    this.reconnects = 0;
    this.reconnecting = false;
    this.retryTimer = null;
    this.leaving = false;
  }

  get slot() {
    return this.welcome?.slot ?? null;
  }

  get epoch() {
    return this.receiver?.epoch ?? 0;
  }

  /** One word for the top bar; always one of the documented states. */
  get status() {
    if (this.ended || this.phase === "ended") return "ended";
    if (this.reconnecting) return "reconnecting";
    if (this.closed) return "disconnected";
    if (!this.welcome) return "connecting";
    if (this.phase === "paused") return "paused";
    if (this.phase === "waiting") return "waiting";
    if (this.controllerSlot === this.slot && this.phase === "controlling") return "controlling";
    if (!this.viewingSlots.includes(this.slot)) return "awaiting consent";
    if (this.controlPending) return "control requested";
    return "observing";
  }

  /**
   * What shows the customer's screen, as the `join` of slot 0 says: "agent", or "browser"
   * when the customer page shares its own screen, which can only show (no control).
   */
  get source() {
    return this.participants.get(AGENT_SLOT)?.source ?? "agent";
  }

  /** Input may leave the page only while we hold control and the agent gave us a key. */
  get mayInput() {
    return this.status === "controlling" && this.pairwise !== null && this.ws?.readyState === WebSocket.OPEN;
  }

  async connect() {
    const algorithms = await supportedAlgorithms();
    this.algorithms = algorithms;
    this.own = await KeyPair.generate(algorithms);
    this.open();
  }

  /**
   * One WebSocket connection. A connection lost for a reason the protocol calls resumable
   * (going away, dropped, too slow, relay unavailable: AfterClose.RESUME) is opened again with
   * the same key pair: the broker keeps our slot and the customer's grants for its resume
   * window, and the read-back words stay the same. Any other close is final.
   */
  open() {
    const ws = openSocket(this.url, this.token);
    this.ws = ws;
    this.closed = null;
    ws.addEventListener("open", () =>
      this.sendText("hello", { role: "viewer", algorithms: this.algorithms, software: SOFTWARE }),
    );
    ws.addEventListener("message", (event) => {
      const arrivedAt = performance.now();
      this.inbox = this.inbox.then(() => this.receive(event.data, arrivedAt));
    });
    ws.addEventListener("close", (event) => this.onClose(ws, event));
    this.changed();
  }

  onClose(ws, event) {
    if (ws !== this.ws) return;
    const closed = { code: event.code, reason: closeReason(event) };
    const resumable = afterClose(event.code) === AfterClose.RESUME && !this.leaving && !this.ended && this.phase !== "ended";
    if (resumable && this.reconnects < RECONNECT_DELAYS_MS.length) {
      const delay = RECONNECT_DELAYS_MS[this.reconnects];
      this.reconnects += 1;
      this.reconnecting = true;
      this.emit("notice", { code: "reconnecting", message: `${closed.reason}: reconnecting in ${delay / 1000} s` });
      this.forgetConnection();
      this.retryTimer = setTimeout(() => this.open(), delay);
      this.changed();
      return;
    }
    this.reconnecting = false;
    this.closed = closed;
    this.emit("closed", closed);
    this.changed();
  }

  /** What the broker tells every new connection again: who is here, their keys, the state. */
  forgetConnection() {
    this.participants.clear();
    this.keys.clear();
    this.pendingWrap = null;
    this.parts = [];
    this.dropAck();
    this.controlPending = false;
    this.readback = null;
  }

  close() {
    this.leaving = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.pictureTimer);
    this.dropAck();
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) this.ws.close(1000, "left");
  }

  // --- outgoing -----------------------------------------------------------------------------

  /** A renewed staff token: the live socket carries on under it, and reconnects use it. */
  renew(token) {
    this.token = token;
    this.sendText("renew", { token });
  }

  sendText(type, fields) {
    return sendIfOpen(this.ws, encodeMessage(type, fields));
  }

  sendBinary(bytes) {
    return sendIfOpen(this.ws, bytes);
  }

  /** Ask for control; `reason` is shown to the customer (one line, cut as the broker cuts it). */
  requestControl(reason = "") {
    if (this.slot === null || this.status !== "observing" || this.source === "browser") return false;
    this.requestIds += 1;
    this.controlPending = true;
    const why = cleanText(reason, CONSENT_REASON_MAX);
    this.sendText("control_request", { request_id: `console-${this.requestIds}`, slot: this.slot, reason: why });
    this.changed();
    return true;
  }

  releaseControl() {
    if (this.slot === null) return false;
    this.controlPending = false;
    this.sendText("control_release", { slot: this.slot });
    this.changed();
    return true;
  }

  requestKeyframe() {
    if (this.slot === null) return false;
    return this.sendBinary(clearFrame(FrameType.KEYFRAME_REQUEST, this.slot, this.epoch, 0));
  }

  /**
   * Seal input events for the agent. Checked here as well as in the capture code: nothing
   * leaves the page unless we hold control right now.
   * @param {object[]} events input events as agent_client/inject.py accepts them
   * @returns {Promise<boolean>} whether a frame was sent
   */
  async sendInput(events) {
    if (!this.mayInput || !events.length) return false;
    const payload = new TextEncoder().encode(JSON.stringify(events.length === 1 ? events[0] : events));
    if (payload.length > MAX_INPUT_SIZE) throw new Error(`input batch of ${payload.length} bytes is too large`);
    const frame = await this.pairwise.seal(FrameType.INPUT, payload);
    return this.mayInput && this.sendBinary(frame);
  }

  /** Chat to the agent, sealed with our pairwise key; the broker audits the frame's header. */
  async sendChat(text) {
    if (!this.pairwise || !text) return false;
    const payload = new TextEncoder().encode(text);
    if (payload.length > MAX_CHAT_BYTES) throw new Error("message too long");
    const frame = await this.pairwise.seal(FrameType.CHAT, payload);
    if (!this.sendBinary(frame)) return false;
    this.emit("chat", { from: this.welcome.participant, text, own: true });
    return true;
  }

  // --- incoming -----------------------------------------------------------------------------

  async receive(data, arrivedAt) {
    try {
      if (typeof data === "string") await this.onText(parseMessage(data));
      else await this.onBinary(new Uint8Array(data), arrivedAt);
    } catch (error) {
      if (error?.code === "version") {
        this.ws.close(CloseCode.UNSUPPORTED_VERSION, "protocol version not supported");
        return;
      }
      if (typeof data !== "string") this.framesDropped += 1;
      this.errors.push(`${error?.code ?? "bad_payload"}: ${error?.message ?? error}`);
      if (this.errors.length > 64) this.errors.shift();
      // A payload that decrypted but does not parse is the agent's bug: repaint from scratch.
      if (!(error instanceof ProtocolError) && typeof data !== "string") this.askKeyframe();
    }
  }

  async onText(message) {
    switch (message.type) {
      case "welcome":
        if (message.session_id !== this.sessionId) throw new ProtocolError("unexpected_frame", "welcome for another session");
        if (this.welcome && this.welcome.slot !== message.slot) throw new ProtocolError("unexpected_frame", "slot changed");
        this.welcome = message;
        this.reconnects = 0;
        this.reconnecting = false;
        this.sendText("public_key", { slot: message.slot, algorithm: this.own.algorithm, key: b64encode(this.own.public.raw) });
        await this.setupReceiver();
        break;
      case "state":
        this.phase = message.phase;
        this.viewingSlots = message.viewing_slots;
        this.controllerSlot = message.controller_slot;
        if (this.controllerSlot === this.slot || !this.viewingSlots.includes(this.slot)) this.controlPending = false;
        this.paused = message.phase === "paused";
        break;
      case "join":
        this.onJoin(message);
        break;
      case "leave":
        // Whoever left holds no key here any more: the read-back covers those present.
        this.participants.delete(message.slot);
        if (message.slot !== this.slot) this.forgetKeys(message.slot);
        this.readback = null;
        break;
      case "public_key":
        await this.onPublicKey(message);
        break;
      case "group_key":
        await this.install(b64decode(message.wrapped));
        break;
      case "error":
        if (this.controlPending) this.controlPending = false;
        this.emit("notice", { code: message.code, message: message.message });
        break;
      case "pause":
      case "resume":
        this.paused = message.type === "pause";
        this.emit("notice", { code: message.type, message: `${message.type}d by the ${message.by}` });
        break;
      case "end":
        this.ended = message;
        this.emit("notice", { code: "end", message: message.reason || `ended by the ${message.by}` });
        break;
      default:
        return; // meant for the agent (consent_request, ...): nothing for us
    }
    await this.updateReadback();
    this.changed();
  }

  onJoin(message) {
    // A key already held for a viewer slot predates this arrival (the broker replays keys of
    // viewers who left), so it is not the newcomer's: wait for theirs (rsb_viewer/session.py).
    const known = this.participants.get(message.slot);
    const newcomer = !known || known.participant !== message.participant;
    if (newcomer && message.slot !== AGENT_SLOT && message.slot !== RECORDING_SLOT) this.forgetKeys(message.slot);
    if (known || this.participants.size < MAX_KNOWN) this.participants.set(message.slot, message);
    this.readback = null;
  }

  async onPublicKey(message) {
    const key = await PublicKey.fromRaw(message.algorithm, b64decode(message.key));
    if (message.slot === this.slot) {
      if (!key.equals(this.own.public)) throw new ProtocolError("unexpected_frame", "a foreign key for our slot");
      return;
    }
    const index = `${message.slot}:${message.algorithm}`;
    if (!this.keys.has(index) && this.keys.size >= MAX_KNOWN) {
      throw new ProtocolError("unexpected_frame", `more than ${MAX_KNOWN} public keys announced`);
    }
    if (!key.equals(this.keys.get(index))) {
      this.keys.set(index, key);
      this.readback = null;
      await this.setupReceiver();
    }
  }

  forgetKeys(slot) {
    for (const index of [...this.keys.keys()]) if (index.startsWith(`${slot}:`)) this.keys.delete(index);
    this.readback = null;
  }

  async setupReceiver() {
    const agent = this.keys.get(`${AGENT_SLOT}:${this.own.algorithm}`);
    if (!this.welcome || !agent || agent.equals(this.receiverAgent)) return;
    // A new agent key: everything derived from the old one is useless; wait for its next wrap.
    this.receiver = await GroupReceiver.create(this.sessionId, this.own, this.welcome.slot, agent);
    this.receiverAgent = agent;
    this.pairwise = null;
    this.screen.reset();
    if (this.pendingWrap) {
      const wrap = this.pendingWrap;
      this.pendingWrap = null;
      await this.install(wrap);
    }
  }

  async install(wrap) {
    if (!this.receiver) {
      this.pendingWrap = wrap; // the wrap overtook the agent's public_key
      return;
    }
    const epoch = await this.receiver.installWrappedKey(wrap, this.maxFrameSize);
    if (this.pairwise) await this.pairwise.advanceEpoch(epoch);
    else {
      this.pairwise = await PairwiseChannel.create(
        this.sessionId, this.own, this.receiverAgent, this.welcome.slot, Side.VIEWER, epoch,
      );
    }
    this.parts = []; // an update split across an epoch change can never complete
    this.wantKeyframe = false; // the agent follows every new epoch with a keyframe
    this.watchForPicture(0);
    this.changed();
  }

  /**
   * Holding a key but still no picture after a while: ask for a keyframe, then again less and
   * less often. The agent sends one after admitting us; if it, or the relay, lost it, the
   * engineer would otherwise look at a blank screen until the customer's screen changes.
   */
  watchForPicture(attempt) {
    clearTimeout(this.pictureTimer);
    const delay = PICTURE_WAIT_MS[Math.min(attempt, PICTURE_WAIT_MS.length - 1)];
    this.pictureTimer = setTimeout(() => {
      if (this.screen.hasPicture || this.leaving || this.ended || !this.receiver?.epoch) return;
      if (this.viewingSlots.includes(this.slot) && this.phase !== "paused" && this.requestKeyframe()) {
        this.keyframesAsked += 1;
      }
      this.watchForPicture(attempt + 1);
    }, delay);
  }

  async onBinary(data, arrivedAt) {
    if (!this.welcome) throw new ProtocolError("unexpected_frame", "binary frame before welcome");
    const { type, slot } = peekRoute(data);
    this.framesReceived.set(type, (this.framesReceived.get(type) ?? 0) + 1);
    if (type === FrameType.KEY_WRAP) {
      if (slot === this.welcome.slot) await this.install(data);
      return; // another viewer's wrap: we could not open it anyway
    }
    if (!this.receiver) throw new ProtocolError("unknown_epoch", "frame before any key was installed");
    if (type === FrameType.CHAT && data[2] & Flags.PAIRWISE && this.pairwise) {
      const { plaintext } = await this.pairwise.open(data, this.maxFrameSize);
      this.emit("chat", { from: this.agentName(), text: new TextDecoder().decode(plaintext), own: false });
      return;
    }
    const { envelope, plaintext } = await this.receiver.open(data, this.maxFrameSize);
    if (type === FrameType.CURSOR) {
      this.screen.setCursor(parseCursor(plaintext));
    } else if (type === FrameType.CHAT) {
      // The agent seals only the customer's own lines under the group key (docs/protocol.md, "Chat").
      this.emit("chat", { from: "Customer", text: new TextDecoder().decode(plaintext), own: false });
    } else {
      this.onUpdate(envelope, parseUpdate(plaintext), arrivedAt);
    }
  }

  onUpdate(envelope, update, arrivedAt) {
    this.parts.push(this.screen.prepare(update, arrivedAt));
    if (envelope.flags & Flags.MORE) {
      if (this.parts.length > 256) {
        this.parts = [];
        throw new Error("an update split with MORE exceeds the viewer's bounds");
      }
      return; // paint only when the last part of the update arrives
    }
    const parts = this.parts;
    this.parts = [];
    const { epoch, seq } = envelope;
    // Not awaited: decoding of the next frames overlaps this paint; the ACK follows the paint.
    this.screen.paint(parts).then((painted) => {
      if (!painted) this.askKeyframe();
      else if (parts.some((part) => part.update.kind === "keyframe")) this.wantKeyframe = false;
      // ACK even an update we could not paint: withholding it would only stall the agent.
      this.acknowledge(epoch, seq);
    });
  }

  acknowledge(epoch, seq) {
    const pending = this.pendingAck;
    // Paints finish in order; an update of a newer epoch makes an older pending ACK worthless.
    const count = pending && pending.epoch === epoch ? pending.count + 1 : 1;
    if (pending && pending.epoch === epoch && pending.seq > seq) return;
    this.pendingAck = { epoch, seq, count };
    if (count >= ACK_EVERY) this.flushAck();
    else if (this.ackTimer === null) this.ackTimer = setTimeout(() => this.flushAck(), ACK_DELAY_MS);
  }

  flushAck() {
    const pending = this.pendingAck;
    this.dropAck();
    if (pending) this.sendBinary(clearFrame(FrameType.ACK, this.slot, pending.epoch, pending.seq));
  }

  dropAck() {
    clearTimeout(this.ackTimer);
    this.ackTimer = null;
    this.pendingAck = null;
  }

  askKeyframe() {
    // One request until a keyframe or a new epoch arrives, not one per unpaintable delta.
    if (this.wantKeyframe) return;
    this.wantKeyframe = true;
    this.requestKeyframe();
  }

  agentName() {
    return this.participants.get(AGENT_SLOT)?.display_name ?? "Customer";
  }

  // --- read-back ----------------------------------------------------------------------------

  /** The keys the customer's words cover: ours, the agent's, the recorder's, viewers present. */
  readbackKeys() {
    const keys = [this.own.public];
    for (const [index, key] of this.keys) {
      const slot = Number(index.split(":")[0]);
      if (slot === AGENT_SLOT || slot === RECORDING_SLOT || this.participants.has(slot)) keys.push(key);
    }
    return keys;
  }

  async updateReadback() {
    if (this.readback || !this.welcome || !this.keys.has(`${AGENT_SLOT}:${this.own.algorithm}`)) return;
    this.readback = await readback(this.sessionId, this.readbackKeys());
  }

  // --- events -------------------------------------------------------------------------------

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  changed() {
    this.emit("change", { status: this.status });
  }
}
