"""Python `websockets` peers for the wsproxy interop tests (tests/interop.rs).

  python peer.py server [--deflate MODE]
      An echo server on 127.0.0.1 (port 0); prints "listening on ws://ADDR"
      on stderr. Every message goes back as it came.
  python peer.py client URL DIR [--deflate MODE]
      Sends the messages listed in DIR/messages.json (fragmented where the
      list says so), checks each echo byte for byte, prints the negotiated
      Sec-WebSocket-Extensions on stdout and exits 0, or 1 on a mismatch.

MODE: "default" (websockets' own permessage-deflate settings: context
takeover, 12-bit windows on the server side), "no-context" (both
no_context_takeover parameters and 9-bit windows), or "off".
"""

import argparse
import asyncio
import json
import os
import signal
import sys

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)

MAX_SIZE = 64 * 1024 * 1024


def extensions(mode, factory):
    """The permessage-deflate offer (client) or acceptance (server) for
    `mode`, built with `factory` (the Client or Server factory class)."""
    if mode == "default":
        return None  # websockets enables its defaults
    if mode == "no-context":
        return [
            factory(
                server_no_context_takeover=True,
                client_no_context_takeover=True,
                server_max_window_bits=9,
                client_max_window_bits=9,
            )
        ]
    return []


def compression(exts):
    return None if exts == [] else "deflate"


async def run_server(mode):
    async def echo(ws):
        async for message in ws:
            await ws.send(message)

    loop = asyncio.get_running_loop()
    stop = loop.create_future()
    loop.add_signal_handler(signal.SIGTERM, stop.set_result, None)
    exts = extensions(mode, ServerPerMessageDeflateFactory)
    kwargs = {"max_size": MAX_SIZE, "compression": compression(exts)}
    if exts:
        kwargs["extensions"] = exts
    async with serve(echo, "127.0.0.1", 0, **kwargs) as server:
        host, port = server.sockets[0].getsockname()[:2]
        print(f"listening on ws://{host}:{port}", file=sys.stderr, flush=True)
        await stop


def load(directory):
    with open(os.path.join(directory, "messages.json")) as f:
        listing = json.load(f)
    messages = []
    for m in listing:
        with open(os.path.join(directory, m["file"]), "rb") as f:
            data = f.read()
        messages.append((m["kind"], data, m["fragments"]))
    return messages


def pieces(data, count):
    size = max(1, -(-len(data) // count))
    return [data[i : i + size] for i in range(0, len(data), size)] or [data]


async def run_client(url, directory, mode):
    exts = extensions(mode, ClientPerMessageDeflateFactory)
    kwargs = {"max_size": MAX_SIZE, "compression": compression(exts)}
    if exts:
        kwargs["extensions"] = exts
    async with connect(url, **kwargs) as ws:
        print(ws.response.headers.get("Sec-WebSocket-Extensions", ""), flush=True)
        for i, (kind, data, fragments) in enumerate(load(directory)):
            value = data.decode("utf-8") if kind == "text" else data
            if fragments > 1:
                parts = pieces(value, fragments)
                await ws.send(parts)
            else:
                await ws.send(value)
            echo = await ws.recv()
            if echo != value:
                print(f"message {i}: echo differs ({len(echo)} vs {len(value)})", file=sys.stderr)
                return 1
    return 0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("role", choices=["server", "client"])
    p.add_argument("url", nargs="?")
    p.add_argument("dir", nargs="?")
    p.add_argument("--deflate", default="default", choices=["default", "no-context", "off"])
    a = p.parse_args()
    if a.role == "server":
        asyncio.run(run_server(a.deflate))
        return 0
    return asyncio.run(run_client(a.url, a.dir, a.deflate))


if __name__ == "__main__":
    sys.exit(main())
