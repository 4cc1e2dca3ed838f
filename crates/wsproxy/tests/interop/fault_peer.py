"""Python `websockets` client for wsproxy's --fault tests (tests/faults.rs).

  python fault_peer.py keepalive URL
      Connects with a fast keepalive (ping every 0.2 s, 0.5 s to answer)
      and waits (at most 10 s) for the connection to close.
  python fault_peer.py echo URL N
      Sends N text messages ("message 1", ...) one at a time, each answered
      before the next (at most 5 s each), until done or closed.

Prints one JSON object on stdout: the messages received, and how the
connection closed (codes and reasons received and sent; 1006 when no close
frame came).
"""

import asyncio
import json
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


def closed(ws, exc=None):
    rcvd = exc.rcvd if exc is not None else ws.protocol.close_rcvd
    sent = exc.sent if exc is not None else ws.protocol.close_sent
    return {
        "rcvd_code": rcvd.code if rcvd else None,
        "rcvd_reason": rcvd.reason if rcvd else None,
        "sent_code": sent.code if sent else None,
        "close_code": ws.close_code,
    }


async def keepalive(url):
    async with connect(url, ping_interval=0.2, ping_timeout=0.5) as ws:
        try:
            await asyncio.wait_for(ws.wait_closed(), 10)
        except asyncio.TimeoutError:
            return {"received": [], "closed": None}
        return {"received": [], "closed": closed(ws)}


async def echo(url, n):
    received = []
    async with connect(url, ping_interval=None) as ws:
        try:
            for i in range(1, n + 1):
                await ws.send(f"message {i}")
                received.append(await asyncio.wait_for(ws.recv(), 5))
            await ws.close()
            return {"received": received, "closed": closed(ws)}
        except ConnectionClosed as exc:
            await ws.wait_closed()
            return {"received": received, "closed": closed(ws, exc)}


def main():
    mode, url = sys.argv[1], sys.argv[2]
    if mode == "keepalive":
        result = asyncio.run(keepalive(url))
    else:
        result = asyncio.run(echo(url, int(sys.argv[3])))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
