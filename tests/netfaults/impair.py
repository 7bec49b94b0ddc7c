"""A TCP relay that adds latency and loss, for the fault harness (this kernel has no `netem`).

    impair.py --listen 198.18.0.11:4000 --target 127.0.0.1:4000 [--listen A --target B ...] \
              --control FILE

Runs inside a proxy host's namespace in front of the proxy's real ports. While FILE holds
"DELAY_MS LOSS" (e.g. "100 0.01"), every chunk each way is held DELAY_MS before it is passed on,
and a fraction LOSS of chunks is held a further 200 ms, the minimum retransmission timeout a
lost TCP segment costs the stream it belongs to (RFC 6298, Linux's TCP_RTO_MIN). Order within a
direction is kept, as TCP keeps it. Without the file the relay adds nothing.
"""

import argparse
import asyncio
import os
import random
import time

RTO_S = 0.2


class Impairment:
    def __init__(self, path: str) -> None:
        self.path = path
        self.checked = 0.0
        self.delay = 0.0
        self.loss = 0.0

    def current(self) -> tuple[float, float]:
        now = time.monotonic()
        if now - self.checked > 0.2:
            self.checked = now
            try:
                with open(self.path) as f:
                    delay_ms, loss = f.read().split()
                self.delay, self.loss = float(delay_ms) / 1000.0, float(loss)
            except (OSError, ValueError):
                self.delay, self.loss = 0.0, 0.0
        return self.delay, self.loss


async def pump(reader, writer, impairment: Impairment) -> None:
    queue: asyncio.Queue = asyncio.Queue()

    async def deliver() -> None:
        while True:
            release, data = await queue.get()
            if data is None:
                break
            wait = release - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(deliver())
    last = 0.0
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            delay, loss = impairment.current()
            if random.random() < loss:
                delay += RTO_S
            last = max(time.monotonic() + delay, last)
            queue.put_nowait((last, data))
    except (ConnectionError, OSError):
        pass
    finally:
        queue.put_nowait((0.0, None))
        try:
            await sender
        except (ConnectionError, OSError):
            pass
        try:
            writer.close()
        except (ConnectionError, OSError):
            pass


async def serve(listen: str, target: str, impairment: Impairment) -> asyncio.AbstractServer:
    target_host, target_port = target.rsplit(":", 1)

    async def handle(reader, writer) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(target_host, int(target_port))
        except OSError:
            writer.close()
            return
        await asyncio.gather(
            pump(reader, up_writer, impairment), pump(up_reader, writer, impairment)
        )

    host, port = listen.rsplit(":", 1)
    return await asyncio.start_server(handle, host, int(port))


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", action="append", required=True)
    parser.add_argument("--target", action="append", required=True)
    parser.add_argument("--control", required=True)
    args = parser.parse_args()
    if len(args.listen) != len(args.target):
        raise SystemExit("impair.py: one --target per --listen")
    impairment = Impairment(args.control)
    servers = [await serve(l, t, impairment) for l, t in zip(args.listen, args.target)]
    print("impair: listening on " + ", ".join(args.listen), flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        os._exit(0)
