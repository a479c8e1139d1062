"""Many concurrent echo clients written with Python's asyncio: each sends
random bytes in random-sized writes (down to one byte), half-closes, and
checks that exactly the same bytes come back before the server closes.

Usage: echo_clients.py (--tcp HOST:PORT | --unix PATH) [--clients N]
       [--bytes N] [--seed N]
Exits 0 when every client got its bytes back byte-exact, 1 otherwise.
"""
import argparse
import asyncio
import random
import sys


async def client(i, args, rng_seed):
    rng = random.Random(rng_seed)
    data = rng.randbytes(args.bytes)
    if args.unix:
        reader, writer = await asyncio.open_unix_connection(args.unix)
    else:
        host, port = args.tcp.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port))

    async def send():
        pos = 0
        while pos < len(data):
            # Mostly small writes, some large: both extremes of chunking.
            if rng.random() < 0.5:
                n = rng.randint(1, 64)
            else:
                n = rng.randint(1, 65536)
            writer.write(data[pos:pos + n])
            pos += n
            await writer.drain()
        writer.write_eof()  # half-close: the server must still answer

    async def receive():
        got = bytearray()
        while True:
            chunk = await reader.read(65536)
            if not chunk:
                return bytes(got)
            got += chunk

    _, got = await asyncio.gather(send(), receive())
    writer.close()
    if got != data:
        first = next((k for k in range(min(len(got), len(data))) if got[k] != data[k]), None)
        raise AssertionError(
            f"client {i}: sent {len(data)} bytes, got {len(got)} back; first difference at {first}"
        )


async def main():
    p = argparse.ArgumentParser()
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--tcp")
    g.add_argument("--unix")
    p.add_argument("--clients", type=int, default=200)
    p.add_argument("--bytes", type=int, default=1 << 20)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--timeout", type=float, default=300)
    args = p.parse_args()
    tasks = [client(i, args, args.seed * 100_000 + i) for i in range(args.clients)]
    results = await asyncio.wait_for(
        asyncio.gather(*tasks, return_exceptions=True), args.timeout
    )
    errors = [r for r in results if isinstance(r, BaseException)]
    for e in errors[:5]:
        print(f"error: {e!r}", file=sys.stderr)
    print(f"{args.clients - len(errors)} of {args.clients} clients got their bytes back")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
