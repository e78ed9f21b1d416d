// Keyboard and mouse on the remote-screen canvas -> input events for the agent.
//
// The events are exactly the JSON agent_client/inject.py accepts (pointer_move, pointer_button,
// scroll, key, type_text). Capture is gated twice: `isEnabled()` (we hold control) is checked
// when an event happens and again when the batch is flushed, and the viewer checks once more
// before sealing. Keyboard listeners sit on the canvas itself, so keys are captured only while
// the canvas has focus; the rest of the page (chat box, forms) types normally.

const SPECIAL_KEYS = new Map([
  ["Enter", "Return"],
  ["Backspace", "BackSpace"],
  ["Tab", "Tab"],
  ["Escape", "Escape"],
  ["Delete", "Delete"],
  ["Home", "Home"],
  ["End", "End"],
  ["ArrowLeft", "Left"],
  ["ArrowRight", "Right"],
  ["ArrowUp", "Up"],
  ["ArrowDown", "Down"],
  ["PageUp", "Page_Up"],
  ["PageDown", "Page_Down"],
  ["Insert", "Insert"],
  ...Array.from({ length: 12 }, (_, i) => [`F${i + 1}`, `F${i + 1}`]),
]);
const MODIFIER_KEYS = new Set(["Shift", "Control", "Alt", "Meta", "AltGraph", "OS", "Super", "Hyper"]);
const BUTTONS = new Map([
  [0, 1],
  [1, 2],
  [2, 3],
]); // DOM button -> X button: left, middle, right
const MAX_EVENTS_PER_FRAME = 64; // agent_client/input_gate.py refuses bigger batches
const MAX_SCROLL_STEPS = 20;
const PIXELS_PER_STEP = 100;

function isPrintable(key) {
  return [...key].length === 1 && !/\p{Cc}/u.test(key);
}

/** The modifiers held in a DOM event, as agent key names, in press order. */
export function heldModifiers(event, { withShift }) {
  const altGraph = event.getModifierState?.("AltGraph") ?? false;
  const held = [];
  if (event.ctrlKey && !altGraph) held.push("Control");
  if (event.altKey && !altGraph) held.push("Alt");
  if (event.metaKey) held.push("Super");
  if (withShift && event.shiftKey) held.push("Shift");
  return held;
}

function chord(modifiers, key) {
  return [
    ...modifiers.map((name) => ({ type: "key", key: name, pressed: true })),
    { type: "key", key, pressed: true },
    { type: "key", key, pressed: false },
    ...modifiers.toReversed().map((name) => ({ type: "key", key: name, pressed: false })),
  ];
}

/**
 * Input events for one keydown, or [] when the key is not forwarded.
 *
 * Printable characters go as type_text, so the customer gets the character the engineer saw
 * whatever the two keyboard layouts are. Shortcuts (Ctrl/Alt/Super + key) and special keys go
 * as a whole press-and-release chord in one frame: a modifier is never left held down on the
 * customer's machine if the next frame is lost or control ends in between.
 */
export function keyEvents(event) {
  if (event.isComposing || MODIFIER_KEYS.has(event.key)) return [];
  const special = SPECIAL_KEYS.get(event.key);
  if (special) return chord(heldModifiers(event, { withShift: true }), special);
  if (!isPrintable(event.key)) return [];
  const modifiers = heldModifiers(event, { withShift: false });
  if (!modifiers.length) return [{ type: "type_text", text: event.key }];
  // With Ctrl or Alt held, the character already reflects Shift ("C"), so Shift is implied.
  return chord(modifiers, event.key);
}

/** Wheel delta in steps (dy > 0 scrolls down), keeping the remainder of smooth scrolling. */
export class WheelAccumulator {
  constructor() {
    this.dx = 0;
    this.dy = 0;
  }

  add(event) {
    const unit = event.deltaMode === 1 ? 1 / 3 : event.deltaMode === 2 ? 1 : 1 / PIXELS_PER_STEP;
    this.dx += event.deltaX * unit;
    this.dy += event.deltaY * unit;
    const clamp = (value) => Math.max(-MAX_SCROLL_STEPS, Math.min(MAX_SCROLL_STEPS, Math.trunc(value)));
    const steps = { dx: clamp(this.dx), dy: clamp(this.dy) };
    this.dx -= steps.dx;
    this.dy -= steps.dy;
    return steps.dx || steps.dy ? { type: "scroll", ...steps } : null;
  }
}

export class InputCapture {
  /**
   * @param {HTMLCanvasElement} canvas focusable (tabindex="0") remote-screen canvas
   * @param {import("./screen.js").Screen} screen maps page positions to screen pixels
   * @param {(events: object[]) => Promise<boolean>} send seals and sends one batch
   * @param {() => boolean} isEnabled true only while we hold control
   */
  constructor(canvas, screen, send, isEnabled) {
    this.canvas = canvas;
    this.screen = screen;
    this.send = send;
    this.isEnabled = isEnabled;
    this.pending = [];
    this.flushScheduled = false;
    this.wheel = new WheelAccumulator();
    this.heldForButton = new Map(); // DOM button -> modifiers pressed with it
    this.onError = () => undefined;
    this.handlers = {
      keydown: (e) => this.onKeyDown(e),
      pointermove: (e) => this.onPointerMove(e),
      pointerdown: (e) => this.onPointerButton(e, true),
      pointerup: (e) => this.onPointerButton(e, false),
      wheel: (e) => this.onWheel(e),
      contextmenu: (e) => this.isEnabled() && e.preventDefault(),
    };
    for (const [type, handler] of Object.entries(this.handlers)) {
      canvas.addEventListener(type, handler, { passive: false });
    }
  }

  detach() {
    for (const [type, handler] of Object.entries(this.handlers)) this.canvas.removeEventListener(type, handler);
    this.pending = [];
  }

  onKeyDown(event) {
    if (!this.isEnabled()) return;
    const events = keyEvents(event);
    if (!events.length) return;
    event.preventDefault(); // Tab must not move focus, Backspace must not navigate
    this.queue(events);
  }

  position(event) {
    return this.screen.toScreen(event.clientX, event.clientY);
  }

  onPointerMove(event) {
    if (!this.isEnabled()) return;
    const at = this.position(event);
    if (!at) return;
    const last = this.pending.at(-1);
    // Moves are coalesced: only the latest position before the next flush matters.
    if (last?.type === "pointer_move") this.pending.pop();
    this.queue([{ type: "pointer_move", ...at }]);
  }

  onPointerButton(event, pressed) {
    if (pressed) this.canvas.focus();
    if (!this.isEnabled()) return;
    const button = BUTTONS.get(event.button);
    if (button === undefined) return;
    event.preventDefault();
    const events = [];
    if (pressed) {
      const at = this.position(event);
      if (!at) return;
      this.canvas.setPointerCapture?.(event.pointerId);
      const modifiers = heldModifiers(event, { withShift: true });
      this.heldForButton.set(event.button, modifiers);
      events.push({ type: "pointer_move", ...at });
      events.push(...modifiers.map((key) => ({ type: "key", key, pressed: true })));
      events.push({ type: "pointer_button", button, pressed: true });
    } else {
      const at = this.position(event);
      if (at) events.push({ type: "pointer_move", ...at });
      events.push({ type: "pointer_button", button, pressed: false });
      const modifiers = this.heldForButton.get(event.button) ?? [];
      this.heldForButton.delete(event.button);
      events.push(...modifiers.toReversed().map((key) => ({ type: "key", key, pressed: false })));
    }
    this.queue(events);
  }

  onWheel(event) {
    if (!this.isEnabled()) return;
    event.preventDefault(); // scroll the customer's window, not the console
    const scroll = this.wheel.add(event);
    if (scroll) this.queue([scroll]);
  }

  queue(events) {
    for (const event of events) {
      const last = this.pending.at(-1);
      if (event.type === "type_text" && last?.type === "type_text" && last.text.length < 1000) {
        last.text += event.text; // one frame for a burst of typing
      } else {
        this.pending.push({ ...event });
      }
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setTimeout(() => this.flush(), 0);
    }
  }

  async flush() {
    this.flushScheduled = false;
    const batch = this.pending;
    this.pending = [];
    if (!this.isEnabled()) return; // control ended before the batch went out: drop it
    for (let i = 0; i < batch.length; i += MAX_EVENTS_PER_FRAME) {
      try {
        await this.send(batch.slice(i, i + MAX_EVENTS_PER_FRAME));
      } catch (error) {
        this.onError(error);
      }
    }
  }
}
