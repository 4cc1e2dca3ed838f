"""An Autobahn fuzzingserver driver for Python's `websockets` client.

The shape of every client library's Autobahn driver (websockets' own
compliance/test_client.py): ask the case count, run each case echoing
every message back, then ask the server to update its reports. The
client offers permessage-deflate, websockets' default.

    wsharness autobahn client --agent python-websockets -- python3 websockets_client.py
    python3 websockets_client.py ws://127.0.0.1:9001   # against wstest -m fuzzingserver

The base URL comes from the first argument, else from AUTOBAHN_URL.
"""

import asyncio
import json
import os
import sys

from websockets.asyncio.client import connect
from websockets.exceptions import WebSocketException

AGENT = os.environ.get("AUTOBAHN_AGENT", "python-websockets")


async def get_case_count(server):
    async with connect(f"{server}/getCaseCount") as ws:
        return json.loads(await ws.recv())


async def run_case(server, case):
    # 9.* sends messages up to 16 MiB; the default limit is 1 MiB.
    async with connect(f"{server}/runCase?case={case}&agent={AGENT}", max_size=2**25) as ws:
        async for message in ws:
            await ws.send(message)


async def update_reports(server):
    async with connect(f"{server}/updateReports?agent={AGENT}", open_timeout=60):
        pass


async def main(server):
    count = await get_case_count(server)
    for case in range(1, count + 1):
        try:
            await run_case(server, case)
        except WebSocketException:
            pass  # the case's outcome is the fuzzingserver's to judge
    await update_reports(server)
    print(f"{count} cases run as {AGENT}", file=sys.stderr)


if __name__ == "__main__":
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("AUTOBAHN_URL")
    if not url:
        sys.exit("usage: websockets_client.py ws://HOST:PORT (or AUTOBAHN_URL)")
    asyncio.run(main(url.rstrip("/")))
