"""Pre-sign request bodies for a rough load test with wrk (scripts/wrk_bodies.lua).

Usage: python scripts/make_bodies.py KEYS_CSV OUT_FILE COUNT [DOCS_PER_BODY]
KEYS_CSV is what `posray terminals import ... --keys-out` wrote. One body per line.
"""

import csv
import sys

import orjson

from tooling.simulator import make_document


def main(argv: list[str]) -> None:
    keys_csv, out_path, count = argv[0], argv[1], int(argv[2])
    per_body = int(argv[3]) if len(argv) > 3 else 1
    with open(keys_csv) as handle:
        terminals = [(r["terminal_id"], bytes.fromhex(r["key_hex"])) for r in csv.DictReader(handle)]
    terminals = terminals[: max(1, min(len(terminals), count * per_body // 4))]
    counters = {}
    with open(out_path, "wb") as out:
        for n in range(count):
            docs = []
            for k in range(per_body):
                tid, key = terminals[(n * per_body + k) % len(terminals)]
                counters[tid] = counters.get(tid, 0) + 1
                docs.append(make_document(tid, 1_000_000 + counters[tid], key, seed=f"{tid}-{counters[tid]}"))
            body = docs[0] if per_body == 1 else {"documents": docs}
            out.write(orjson.dumps(body) + b"\n")


if __name__ == "__main__":
    main(sys.argv[1:])
