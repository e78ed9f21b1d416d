"""The smallest useful relay, as the ceiling the broker is measured against.

Two routes, ``/agent/{id}`` and ``/view/{id}``: every binary message from an agent is sent to
the viewers of the same id, and every binary message from a viewer to that agent (a paired
relay forwards both ways; the benchmark's viewers send their ACKs back through every relay
alike). That is all: no authentication, no header parsing, no flow control, no state machine.
Same aiohttp, same knobs as the broker: no compression, TCP_NODELAY.

Run: ``python -m bench.minimal_relay --port P [--uvloop]``; it prints "ready" when listening.
"""

from __future__ import annotations

import argparse
import asyncio
import socket

from aiohttp import WSMsgType, web

VIEWERS: web.AppKey[dict[str, set[web.WebSocketResponse]]] = web.AppKey("viewers", dict)
AGENTS: web.AppKey[dict[str, web.WebSocketResponse]] = web.AppKey("agents", dict)


async def _open(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(compress=False, max_msg_size=8 * 1024 * 1024)
    await ws.prepare(request)
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return ws


async def agent(request: web.Request) -> web.WebSocketResponse:
    ws = await _open(request)
    key = request.match_info["id"]
    viewers = request.app[VIEWERS].setdefault(key, set())
    request.app[AGENTS][key] = ws
    try:
        async for message in ws:
            if message.type == WSMsgType.BINARY:
                for viewer in tuple(viewers):
                    await viewer.send_bytes(message.data)
    finally:
        if request.app[AGENTS].get(key) is ws:
            del request.app[AGENTS][key]
    return ws


async def view(request: web.Request) -> web.WebSocketResponse:
    ws = await _open(request)
    key = request.match_info["id"]
    viewers = request.app[VIEWERS].setdefault(key, set())
    viewers.add(ws)
    try:
        async for message in ws:
            agent_ws = request.app[AGENTS].get(key)
            if message.type == WSMsgType.BINARY and agent_ws is not None:
                await agent_ws.send_bytes(message.data)
    finally:
        viewers.discard(ws)
    return ws


def make_app() -> web.Application:
    app = web.Application()
    app[VIEWERS] = {}
    app[AGENTS] = {}
    app.router.add_get("/agent/{id}", agent)
    app.router.add_get("/view/{id}", view)
    return app


async def serve(port: int) -> None:
    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port, backlog=4096)
    await site.start()
    print("ready", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--uvloop", action="store_true")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        uvloop.install()
    try:
        asyncio.run(serve(args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
