"""While cooperative admins load the reports page again and again (its
thirteen reports at once, as reports.js asks for them), a librarian's
question list is asked every 100 ms: how long it takes, and whether it
fails. Used by scripts/bench-reports-beside.sh (docs/performance.md).

Usage: reports-beside-desk.py URL SECONDS ADMINS
Signs in as `boss` (a cooperative admin) and `lib` (a librarian), password
from REFDESK_PASSWORD."""
import os
import sys
import threading
import time

import requests

base, seconds, admins = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
password = os.environ["REFDESK_PASSWORD"]


def sign_in(username):
    s = requests.Session()
    s.post(f"{base}/api/login", json={"username": username, "password": password}).raise_for_status()
    return s


def percentile(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))]


def probe(librarian, until, out, errors):
    while time.time() < until:
        began = time.perf_counter()
        r = librarian.get(f"{base}/api/questions?limit=20")
        out.append((time.perf_counter() - began) * 1000)
        if r.status_code != 200:
            errors.append(r.status_code)
        time.sleep(0.1)


def reports_page(names, until, pages):
    admin = sign_in("boss")
    get = lambda n: admin.get(f"{base}/api/reports/{n}?from=2025-01-01&to=2025-12-31")
    while time.time() < until:
        page = [threading.Thread(target=get, args=(n,)) for n in names]
        for t in page:
            t.start()
        for t in page:
            t.join()
        pages.append(1)


librarian = sign_in("lib")
names = [r["name"] for r in sign_in("boss").get(f"{base}/api/reports").json()]
for label, loaders in (("alone", 0), ("beside the reports", admins)):
    until, lat, errors, pages = time.time() + (5 if loaders == 0 else seconds), [], [], []
    threads = [threading.Thread(target=reports_page, args=(names, until, pages)) for _ in range(loaders)]
    threads.append(threading.Thread(target=probe, args=(librarian, until, lat, errors)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(
        f"question list {label}: {len(lat)} asked, p50 {percentile(lat, .5):.1f} ms, p99 {percentile(lat, .99):.1f} ms, "
        f"max {max(lat):.1f} ms, {len(errors)} failed {sorted(set(errors))}"
        + (f"; reports pages loaded: {len(pages)} ({loaders} admins, {len(names)} reports a page)" if loaders else "")
    )
