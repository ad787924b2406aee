"""python -m bench.delayproxy LISTEN_PORT UPSTREAM_PORT ONE_WAY_MS: a loopback TCP proxy
that delays every byte by ONE_WAY_MS in each direction, so a request and its response
pay a real round trip of twice that.

It stands in for `tc netem`, which these machines' kernel does not have (no
CONFIG_NET_SCH_NETEM, no prio qdisc). Bytes keep their order and are never held back
by later ones: each chunk is released ONE_WAY_MS after it arrived. A new connection
also pays one round trip before its first byte goes upstream, as a TCP handshake
over such a link would. Bandwidth is not limited.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

CHUNK = 256 * 1024


async def _pump(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float, first: float
) -> None:
    """Copy reader to writer, releasing each chunk `delay` seconds after it arrived."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def release() -> None:
        extra = first
        while True:
            due, chunk = await queue.get()
            wait = due + extra - loop.time()
            extra = 0.0
            if wait > 0:
                await asyncio.sleep(wait)
            if not chunk:
                break
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    releaser = asyncio.create_task(release())
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(CHUNK):
            queue.put_nowait((loop.time() + delay, chunk))
    queue.put_nowait((loop.time() + delay, b""))
    with contextlib.suppress(ConnectionError):
        await releaser


async def _serve(listen: int, upstream: int, delay: float) -> None:
    async def handle(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection("127.0.0.1", upstream)
        except OSError:
            client_w.close()
            return
        await asyncio.gather(
            _pump(client_r, server_w, delay, first=2 * delay),
            _pump(server_r, client_w, delay, first=0.0),
            return_exceptions=True,
        )
        for writer in (client_w, server_w):
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", listen, backlog=512)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


def main() -> int:
    listen, upstream, one_way_ms = (float(a) for a in sys.argv[1:4])
    asyncio.run(_serve(int(listen), int(upstream), one_way_ms / 1000))
    return 0


if __name__ == "__main__":
    sys.exit(main())
