"""Times the question list's views and a few filters for each staff member
named (password from REFDESK_PASSWORD): the median of five asks of each, a
page of 20. Used by scripts/bench-question-list.sh (docs/performance.md).

Usage: question-list-views.py URL USERNAME..."""
import os
import sys
import time

import requests

base, users = sys.argv[1], sys.argv[2:]
password = os.environ["REFDESK_PASSWORD"]
now = int(time.time() * 1000)
DAY = 86_400_000
QUERIES = [f"view={v}" for v in ["all", "my_new", "my_active", "new", "active", "closed", "referred", "follow_up", "live"]] + [
    "code=inappropriate",
    f"from={now - 7 * DAY}",
    f"from={now - 400 * DAY}&to={now - 390 * DAY}",
    "library=bench-i5l8",
    "view=referred&code=inappropriate",
    "q=zebra",
]

for user in users:
    s = requests.Session()
    s.post(f"{base}/api/login", json={"username": user, "password": password}).raise_for_status()
    for q in QUERIES:
        took = []
        for _ in range(5):
            began = time.perf_counter()
            r = s.get(f"{base}/api/questions?{q}&limit=20")
            took.append((time.perf_counter() - began) * 1000)
        r.raise_for_status()
        print(f"{user:6} {q:40} {len(r.json()):3} found  median {sorted(took)[2]:7.1f} ms", flush=True)
