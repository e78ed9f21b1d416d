// The pages' WebSocket to the relay: the endpoint's address, the handshake, sending, and what
// a close code means. Shared by the console's viewer (viewer.js), the customer page
// (customer-live.js) and its browser share (share.js); each applies the close verdict its own
// way (docs/api.md, "WebSocket close codes"), from the one table in wire.js.
//
// The token is offered as a subprotocol next to rsb.v1: a browser cannot set headers on a
// WebSocket, and a token in the URL would end up in access logs and proxies.

import { AfterClose, CLOSE_CODE_EXPLANATIONS, SUBPROTOCOL, TOKEN_PREFIX, afterClose } from "./wire.js";

export { AfterClose, afterClose };

/** `ws://` or `wss://` (as the page is served) to `path` on the page's own host. */
export function socketUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

/** Open `url` with `token` as the second subprotocol; binary messages come as ArrayBuffers. */
export function openSocket(url, token) {
  const ws = new WebSocket(url, [SUBPROTOCOL, TOKEN_PREFIX + token]);
  ws.binaryType = "arraybuffer";
  return ws;
}

/** The broker's close reason, or the protocol's explanation of the code when it gave none. */
export function closeReason(event) {
  return event.reason || CLOSE_CODE_EXPLANATIONS[event.code] || "closed";
}

/** Send `data` (text or bytes) if `ws` is open; false (nothing sent) otherwise. */
export function sendIfOpen(ws, data) {
  if (ws?.readyState !== WebSocket.OPEN) return false;
  ws.send(data);
  return true;
}
