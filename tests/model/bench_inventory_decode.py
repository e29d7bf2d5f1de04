"""Decode-and-validate throughput of InventoryBalance from JSON lines.

Run: ``.venv/bin/python -m tests.model.bench_inventory_decode [records]`` (default 200,000). Prints records per
second for decoding line by line (the shape of a JSON-lines file or a message stream) and, for comparison, one
JSON array in a single call. Every record goes through msgspec's type checks and the model's post-decode checks
(UTC, finite decimals, key parts).
"""

from __future__ import annotations

import sys
import time

import msgspec

from syncfabric.model.transactions import InventoryBalance


def make_lines(count: int) -> list[bytes]:
    lines = []
    for n in range(count):
        lot = f',"lot":"L{n % 97:04d}"' if n % 3 else ""
        allocated = f',"allocated":{{"value":"{n % 50}.5","unit":"EA"}}' if n % 2 else ""
        lines.append(
            (
                f'{{"item_id":"MAT-{n:07d}","location_id":"P{1000 + n % 40}"{lot},'
                f'"on_hand":{{"value":"{n % 10_000}.250","unit":"EA"}}{allocated},'
                f'"as_of":"2025-03-14T07:{n % 60:02d}:00Z"}}'
            ).encode()
        )
    return lines


def measure(count: int) -> dict[str, float]:
    lines = make_lines(count)
    decoder = msgspec.json.Decoder(InventoryBalance)
    decoder.decode(lines[0])  # warm up the check plan

    start = time.perf_counter()
    decoded = [decoder.decode(line) for line in lines]
    per_line = time.perf_counter() - start

    array = b"[" + b",".join(lines) + b"]"
    array_decoder = msgspec.json.Decoder(list[InventoryBalance])
    start = time.perf_counter()
    in_one_call = array_decoder.decode(array)
    whole_array = time.perf_counter() - start

    assert len(decoded) == len(in_one_call) == count
    return {"records": count, "lines_per_s": count / per_line, "array_per_s": count / whole_array}


def main() -> None:
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    result = measure(count)
    print(f"{result['records']:,} InventoryBalance records")
    print(f"  JSON lines, one decode per line: {result['lines_per_s']:,.0f} records/s")
    print(f"  one JSON array, one decode call: {result['array_per_s']:,.0f} records/s")


if __name__ == "__main__":
    main()
