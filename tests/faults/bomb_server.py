"""The decompression-bomb server of ``test_bomb_memory.py``, run as its own process
(``python -m tests.faults.bomb_server``) so that serving bombs costs the measuring
test's event loop nothing. Prints its port on the first line of stdout, then answers
every request with a bomb (alternately a 1 MB gzip of 1 GiB of zeros and the same
gzipped twice, sent as ``Content-Encoding: gzip, gzip``), except ``GET /count``: the
requests served so far, by source, as JSON."""

from __future__ import annotations

import asyncio
import json

from tests.faults.servers import Hit, Reply, faulty_server, gzip_bomb

GIB = 1024 * 1024 * 1024


class Bombs:
    def __init__(self) -> None:
        once = gzip_bomb(GIB)
        twice = gzip_bomb(GIB, layers=2)
        self.bombs = (
            Reply(200, once, "application/json", headers=(("Content-Encoding", "gzip"),)),
            Reply(200, twice, "application/json", headers=(("Content-Encoding", "gzip, gzip"),)),
        )
        self.count: dict[str, int] = {}

    def __call__(self, hit: Hit) -> Reply:
        if hit.path == "/count":
            return Reply(body=json.dumps(self.count).encode())
        key = "cloudflare" if hit.path.endswith("/graphql") else hit.path
        self.count[key] = self.count.get(key, 0) + 1
        return self.bombs[self.count[key] % 2]


async def main() -> None:
    async with faulty_server(Bombs()) as server:
        print(server.port, flush=True)
        await asyncio.Event().wait()  # until the test kills the process


if __name__ == "__main__":
    asyncio.run(main())
