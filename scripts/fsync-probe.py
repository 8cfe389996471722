#!/usr/bin/env python3
"""How long this machine's disk takes to make a write durable.

Writes 8 KiB and calls fdatasync, at a fixed rate, for some seconds, in a
scratch file next to the data, and prints the latency distribution and how
many calls took over 20 and 40 ms. Every acknowledged assessment waits for
one such sync (SQLite's WAL commit or PostgreSQL's WAL flush), so a stall
here is a stall in assess latency whatever the code does; run it before
judging a p99 (docs/benchmarks.md).

Usage: scripts/fsync-probe.py [seconds] [syncs-per-second] [directory]
(defaults: 30, 200, the current directory)
"""
import os
import sys
import time


def main() -> None:
    secs = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
    rate = float(sys.argv[2]) if len(sys.argv) > 2 else 200.0
    directory = sys.argv[3] if len(sys.argv) > 3 else "."
    path = os.path.join(directory, f".fsync-probe-{os.getpid()}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    block = os.urandom(8192)
    latencies = []
    offset = 0
    end = time.monotonic() + secs
    try:
        while time.monotonic() < end:
            start = time.perf_counter()
            os.pwrite(fd, block, offset)
            os.fdatasync(fd)
            took = time.perf_counter() - start
            latencies.append(took * 1000.0)
            offset = (offset + len(block)) % (64 << 20)
            time.sleep(max(0.0, 1.0 / rate - took))
    finally:
        os.close(fd)
        os.unlink(path)
    latencies.sort()
    n = len(latencies)

    def pct(p: float) -> float:
        return latencies[min(n - 1, int(n * p))]

    print(
        f"{n} syncs in {secs:.0f} s: p50 {pct(0.5):.2f} ms, p99 {pct(0.99):.2f} ms, "
        f"p99.9 {pct(0.999):.2f} ms, max {latencies[-1]:.2f} ms, "
        f"over 20 ms {sum(x > 20 for x in latencies)}, over 40 ms {sum(x > 40 for x in latencies)}"
    )


if __name__ == "__main__":
    main()
