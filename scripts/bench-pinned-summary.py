#!/usr/bin/env python3
"""Medians and ratios of a scripts/bench-pinned.sh run, as Markdown tables.

Reads the raw outputs the script wrote (OUT), one file per part and run:
sweep-{relay,refdesk}-N.txt, idle-{relay,refdesk}-N.txt, pg-{old,new,two}-N.txt.
Usage: scripts/bench-pinned-summary.py OUT
"""
import glob
import os
import re
import statistics
import sys


def summaries(path):
    """The `summary:` lines of a bench output, as dicts of numbers."""
    rows = []
    with open(path) as f:
        for line in f:
            if line.startswith("summary: "):
                rows.append({k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])})
    return rows


def runs(out, pattern):
    return sorted(glob.glob(os.path.join(out, pattern)))


def highest(phases, p99_ms):
    """The highest offered rate before the first phase that is too slow."""
    best = 0.0
    for p in phases:
        if p["p99_us"] >= p99_ms * 1000 or p["undelivered"] > 0:
            break
        best = p["offered"]
    return best


def at(phases, offered, key):
    for p in phases:
        if p["offered"] == offered:
            return p[key]
    return None


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fmt(v, unit=""):
    return "—" if v is None else f"{v:,.1f}{unit}" if v < 100 else f"{v:,.0f}{unit}"


def ratio(a, b):
    return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}×"


def sweep(out):
    servers = {s: [summaries(f) for f in runs(out, f"sweep-{s}-*.txt")] for s in ("relay", "refdesk")}
    if not any(servers.values()):
        return
    n = min(len(v) for v in servers.values())
    print(f"### Sweep ({n} runs; medians; each run's relay and refdesk one after the other)\n")
    print("| figure | bare relay | refdesk | refdesk ÷ relay | runs (relay; refdesk) |")
    print("|---|---|---|---|---|")
    for offered in (2000.0, 10000.0):
        vals = {s: [at(ph, offered, "cpu_us_per_msg") for ph in servers[s]] for s in servers}
        a, b = median(vals["relay"]), median(vals["refdesk"])
        print(f"| server CPU per delivered message at {offered:,.0f} msg/s offered | {fmt(a, ' µs')} | {fmt(b, ' µs')} "
              f"| {ratio(b, a)} | {', '.join(fmt(v) for v in vals['relay'])}; {', '.join(fmt(v) for v in vals['refdesk'])} |")
        vals = {s: [at(ph, offered, "p99_us") for ph in servers[s]] for s in servers}
        a, b = median(vals["relay"]), median(vals["refdesk"])
        ms = lambda v: None if v is None else v / 1000
        print(f"| p99 at {offered:,.0f} msg/s offered | {fmt(ms(a), ' ms')} | {fmt(ms(b), ' ms')} | {ratio(b, a)} "
              f"| {', '.join(fmt(ms(v)) for v in vals['relay'])}; {', '.join(fmt(ms(v)) for v in vals['refdesk'])} |")
    for limit in (50, 5):
        vals = {s: [highest(ph, limit) for ph in servers[s]] for s in servers}
        a, b = median(vals["relay"]), median(vals["refdesk"])
        print(f"| highest offered msg/s with p99 < {limit} ms, nothing undelivered | {fmt(a)} | {fmt(b)} | {ratio(b, a)} "
              f"| {', '.join(fmt(v) for v in vals['relay'])}; {', '.join(fmt(v) for v in vals['refdesk'])} |")
    print()
    for s in servers:
        print(f"#### Every phase, {s} (offered msg/s: CPU µs per message, p99 ms, undelivered)\n")
        for i, ph in enumerate(servers[s], 1):
            cells = [f"{p['offered']:,.0f}: {p['cpu_us_per_msg']:.0f} µs, {p['p99_us'] / 1000:.1f} ms, {p['undelivered']:.0f}"
                     for p in ph]
            print(f"- run {i}: " + " · ".join(cells))
        print()


def idle(out):
    vals = {s: [r[0]["kib_per_connection"] for f in runs(out, f"idle-{s}-*.txt") if (r := summaries(f))]
            for s in ("relay", "refdesk")}
    if not any(vals.values()):
        return
    a, b = median(vals["relay"]), median(vals["refdesk"])
    print("### Idle sockets (8,000; medians)\n")
    print("| | bare relay (idle socket) | refdesk (waiting patron) | refdesk ÷ relay | runs |")
    print("|---|---|---|---|---|")
    print(f"| RSS per connection | {fmt(a, ' KiB')} | {fmt(b, ' KiB')} | {ratio(b, a)} "
          f"| {', '.join(fmt(v) for v in vals['relay'])}; {', '.join(fmt(v) for v in vals['refdesk'])} |\n")


def throughput(path):
    with open(path) as f:
        m = re.search(r"throughput: (\d+) msg/s", f.read())
    return float(m.group(1)) if m else None


def pg(out):
    vals = {s: [throughput(f) for f in runs(out, f"pg-{s}-*.txt")] for s in ("old", "new", "two")}
    if not any(vals.values()):
        return
    print("### PostgreSQL saturation (500 chats × 20 msg/s/side, 20,000 offered; delivered msg/s, medians)\n")
    print("| set-up | delivered msg/s | ÷ old build, one node | runs |")
    print("|---|---|---|---|")
    old = median(vals["old"])
    for s, label in (("old", "old build, one node"), ("new", "this build, one node"),
                     ("two", "this build, two nodes (PostgreSQL + NATS)")):
        print(f"| {label} | {fmt(median(vals[s]))} | {ratio(median(vals[s]), old)} | {', '.join(fmt(v) for v in vals[s])} |")
    print()


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else sys.exit("usage: bench-pinned-summary.py OUT")
    sweep(out)
    idle(out)
    pg(out)
