// The remote screen on a canvas: parses decrypted update payloads (agent_client/encoder.py
// wire format), decodes regions with createImageBitmap in parallel and paints them strictly in
// arrival order (feasibility.md section 5: about 1,100 tiles/s that way against 850 serially),
// draws the agent's pointer on an overlay and maps page coordinates back to screen pixels.

const CODECS = new Map([
  [1, "image/jpeg"],
  [2, "image/png"],
  [3, "image/webp"],
]);
const KINDS = new Map([
  [0, "keyframe"],
  [1, "delta"],
  [2, "refresh"],
]);
const UPDATE_HEADER = 8; // version u8 | kind u8 | width u16 | height u16 | count u16
const REGION_HEADER = 13; // x u16 | y u16 | w u16 | h u16 | codec u8 | length u32
const WIRE_VERSION = 1;
/** An 8K screen; a keyframe claiming more is refused, not allocated. */
export const MAX_CANVAS_PIXELS = 7680 * 4320;

/**
 * Decode and check an update, as agent_client.encoder.parse_update does. The payload comes from
 * the network (after decryption), so every length and rectangle is checked before use.
 * @returns {{kind: string, width: number, height: number,
 *            regions: Array<{x:number,y:number,w:number,h:number,type:string,data:Uint8Array}>}}
 * @throws {Error} unknown version, kind or codec; truncated or trailing bytes; bad rectangle
 */
export function parseUpdate(bytes) {
  if (bytes.length < UPDATE_HEADER) throw new Error(`update too short: ${bytes.length} bytes`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint8(0) !== WIRE_VERSION) throw new Error(`unsupported update version ${view.getUint8(0)}`);
  const kind = KINDS.get(view.getUint8(1));
  if (!kind) throw new Error(`unknown update kind ${view.getUint8(1)}`);
  const width = view.getUint16(2);
  const height = view.getUint16(4);
  const count = view.getUint16(6);
  let offset = UPDATE_HEADER;
  const regions = [];
  for (let i = 0; i < count; i += 1) {
    if (bytes.length - offset < REGION_HEADER) throw new Error(`region ${i}: header truncated`);
    const x = view.getUint16(offset);
    const y = view.getUint16(offset + 2);
    const w = view.getUint16(offset + 4);
    const h = view.getUint16(offset + 6);
    const type = CODECS.get(view.getUint8(offset + 8));
    const length = view.getUint32(offset + 9);
    offset += REGION_HEADER;
    if (!type) throw new Error(`region ${i}: unknown codec ${view.getUint8(offset - 5)}`);
    if (w === 0 || h === 0 || x + w > width || y + h > height) {
      throw new Error(`region ${i}: rectangle ${x},${y} ${w}x${h} outside ${width}x${height}`);
    }
    if (bytes.length - offset < length) throw new Error(`region ${i}: payload truncated`);
    regions.push({ x, y, w, h, type, data: bytes.subarray(offset, offset + length) });
    offset += length;
  }
  if (offset !== bytes.length) throw new Error(`${bytes.length - offset} trailing bytes after ${count} regions`);
  return { kind, width, height, regions };
}

/** Decode a 5-byte cursor message: x u16 | y u16 | flags u8 (bit 0 visible). */
export function parseCursor(bytes) {
  if (bytes.length !== 5) throw new Error(`cursor message must be 5 bytes, got ${bytes.length}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, 5);
  const flags = view.getUint8(4);
  if (flags & ~0x01) throw new Error(`unknown cursor flags ${flags}`);
  return { x: view.getUint16(0), y: view.getUint16(2), visible: Boolean(flags & 0x01) };
}

async function decodeRegion(region) {
  const bitmap = await createImageBitmap(new Blob([region.data], { type: region.type }), {
    colorSpaceConversion: "none",
    premultiplyAlpha: "none",
  });
  // The size is checked as the Python viewer does: a region must fill exactly its rectangle.
  if (bitmap.width !== region.w || bitmap.height !== region.h) {
    bitmap.close();
    throw new Error(`image is ${bitmap.width}x${bitmap.height}, region is ${region.w}x${region.h}`);
  }
  return bitmap;
}

export class Screen {
  /**
   * @param {HTMLCanvasElement} canvas the picture (scaled by CSS, object-fit: contain)
   * @param {HTMLCanvasElement} overlay same size, stacked on top: the agent's pointer
   */
  constructor(canvas, overlay) {
    this.canvas = canvas;
    this.overlay = overlay;
    this.ctx = canvas.getContext("2d", { alpha: false });
    this.overlayCtx = overlay.getContext("2d");
    this.hasPicture = false;
    this.chain = Promise.resolve();
    this.cursor = null;
    this.paintTimes = [];
    this.latencyMs = null;
    this.updatesPainted = 0;
    this.lastError = null;
  }

  /** Start decoding every region now; painting waits for its turn (see paint). */
  prepare(update, arrivedAt = performance.now()) {
    if (update.kind === "keyframe" && update.width * update.height > MAX_CANVAS_PIXELS) {
      throw new Error(`keyframe of ${update.width}x${update.height} is too large`);
    }
    const bitmaps = Promise.all(update.regions.map(decodeRegion));
    bitmaps.catch(() => undefined); // handled in paint; avoid an unhandled-rejection report
    return { update, bitmaps, arrivedAt };
  }

  /**
   * Paint prepared updates after everything queued before them.
   * @returns {Promise<boolean>} false if a part could not be painted (ask for a keyframe)
   */
  paint(parts) {
    const result = this.chain.then(() => this.drawParts(parts));
    this.chain = result.catch(() => undefined);
    return result;
  }

  async drawParts(parts) {
    let ok = true;
    for (const part of parts) {
      let bitmaps;
      try {
        bitmaps = await part.bitmaps;
      } catch (error) {
        this.lastError = `${part.update.kind} not decoded: ${error?.message ?? error}`;
        ok = false;
        continue;
      }
      ok = this.drawUpdate(part.update, bitmaps) && ok;
      for (const bitmap of bitmaps) bitmap.close();
      this.noteLatency(performance.now() - part.arrivedAt);
    }
    return ok;
  }

  drawUpdate(update, bitmaps) {
    const sizeChanged = this.canvas.width !== update.width || this.canvas.height !== update.height;
    if (update.kind === "keyframe") {
      if (sizeChanged) this.resize(update.width, update.height);
    } else if (!this.hasPicture || sizeChanged) {
      this.lastError = `${update.kind} without a picture to apply it to`;
      return false;
    }
    update.regions.forEach((region, i) => this.ctx.drawImage(bitmaps[i], region.x, region.y));
    if (update.kind === "keyframe") this.hasPicture = true;
    this.updatesPainted += 1;
    this.paintTimes.push(performance.now());
    this.canvas.dispatchEvent(new Event("painted"));
    return true;
  }

  resize(width, height) {
    this.canvas.width = width;
    this.canvas.height = height;
    this.overlay.width = width;
    this.overlay.height = height;
    this.drawCursor();
  }

  /** Forget the picture (a new agent key: whatever comes next starts with a keyframe). */
  reset() {
    this.hasPicture = false;
  }

  setCursor(cursor) {
    this.cursor = cursor;
    this.drawCursor();
  }

  drawCursor() {
    const ctx = this.overlayCtx;
    ctx.clearRect(0, 0, this.overlay.width, this.overlay.height);
    if (!this.cursor?.visible) return;
    const { x, y } = this.cursor;
    // A plain arrow: the agent sends the position only, not the shape.
    ctx.beginPath();
    ctx.moveTo(x, y);
    ctx.lineTo(x, y + 17);
    ctx.lineTo(x + 4.5, y + 13);
    ctx.lineTo(x + 8, y + 20);
    ctx.lineTo(x + 10.5, y + 19);
    ctx.lineTo(x + 7, y + 12);
    ctx.lineTo(x + 12.5, y + 12);
    ctx.closePath();
    ctx.fillStyle = "#ffffff";
    ctx.strokeStyle = "#000000";
    ctx.lineWidth = 1;
    ctx.fill();
    ctx.stroke();
  }

  noteLatency(ms) {
    this.latencyMs = this.latencyMs === null ? ms : this.latencyMs * 0.8 + ms * 0.2;
  }

  /** Painted updates per second over the last second. */
  get fps() {
    const since = performance.now() - 1000;
    while (this.paintTimes.length && this.paintTimes[0] < since) this.paintTimes.shift();
    return this.paintTimes.length;
  }

  /**
   * Map a page position to remote screen pixels through the canvas scaling. The canvas keeps
   * its aspect ratio inside its box (object-fit: contain), so the letterbox is subtracted.
   * @returns {{x:number, y:number}|null} null outside the picture or before the first keyframe
   */
  toScreen(clientX, clientY) {
    if (!this.hasPicture) return null;
    const rect = this.canvas.getBoundingClientRect();
    const { width, height } = this.canvas;
    const scale = Math.min(rect.width / width, rect.height / height);
    if (!(scale > 0)) return null;
    const left = rect.left + (rect.width - width * scale) / 2;
    const top = rect.top + (rect.height - height * scale) / 2;
    const x = Math.floor((clientX - left) / scale);
    const y = Math.floor((clientY - top) / scale);
    if (x < 0 || y < 0 || x >= width || y >= height) return null;
    return { x, y };
  }
}
