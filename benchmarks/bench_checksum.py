"""What checking the examples against manifest.json costs: sha256 throughput on one core.

    python -m benchmarks.bench_checksum [--megabytes 512] [--repeats 3]

Writes a file of random bytes, then times pipeline.manifest.damaged_files on it (the check the
train and evaluate stages run on every file they read, and the preprocess skip check's hash):
the first pass after writing reads from the page cache, as a stage started soon after
preprocessing does; a cold disk adds its own read time. Prints GB/s and the time BP4D's examples
(about 146,000 aligned faces at about 15 kB each) would take.
"""
import argparse
import os
import statistics
import tempfile
import time

from components.base.files import stream_sha256
from pipeline.manifest import damaged_files

BP4D_BYTES = 146_000 * 15_000


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "part1.bin")
        with open(path, "wb") as f:
            for _ in range(args.megabytes):
                f.write(os.urandom(1 << 20))
        with open(path, "rb") as f:
            entry = {"path": "part1.bin", "bytes": args.megabytes << 20, "sha256": stream_sha256(f)}
        seconds = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            assert damaged_files(folder, [entry]) == []
            seconds.append(time.perf_counter() - started)
    rate = (args.megabytes << 20) / statistics.median(seconds) / 1e9
    print(f"sha256 check: {rate:.2f} GB/s (median of {args.repeats} passes over "
          f"{args.megabytes} MB); BP4D's ~{BP4D_BYTES / 1e9:.1f} GB of examples: "
          f"{BP4D_BYTES / 1e9 / rate:.1f} s")


if __name__ == "__main__":
    main()
