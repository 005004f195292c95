#!/usr/bin/env python3
"""Fills a gateway store (already created and migrated by `gateway serve`) with
settled create operations of merchant `bench` and their instances, as a busy
marketplace would have left them: for the store-size runs of
scripts/bench-scaling. Usage: prefill-store.py <gateway.db> <records>"""

import os
import random
import sqlite3
import sys
import time


def main() -> None:
    path, records = sys.argv[1], int(sys.argv[2])
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = OFF")
    now = int(time.time() * 1000)
    request = "r" * 1200  # about the size of a sealed create request
    result = "a" * 600  # and of its answer
    batch = 20_000
    for start in range(0, records, batch):
        ops, instances = [], []
        for i in range(start, min(start + batch, records)):
            key = os.urandom(16).hex()
            instance = f"bench-{os.urandom(12).hex()}"
            order = f"CSPREFILL{i:012d}"
            at = now - random.randint(0, 86_400_000)
            ops.append(("bench", key, 0, "create", f"{order} / {order}-000001", instance,
                        os.urandom(32).hex(), "succeeded", 1, None, request, result, at, at))
            instances.append(("bench", instance, order, f"{order}-000001", "assigned",
                              "active", None, at, at))
        db.executemany(
            "INSERT INTO operations (merchant_id, idempotency_key, test, kind, business_key,"
            " instance_id, fingerprint, status, attempt, locked_until, request_json,"
            " result_json, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", ops)
        db.executemany(
            "INSERT INTO instances (merchant_id, instance_id, order_id, order_line_key, origin,"
            " status, expires_at, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?)", instances)
        db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()


if __name__ == "__main__":
    main()
