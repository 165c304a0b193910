#!/usr/bin/env python3
"""Medians and ratios of a scripts/bench-pinned.sh run, as Markdown tables.

Reads the raw outputs the script wrote (OUT), one file per part and run:
sweep-{relay,refdesk}-N.txt, idle-{relay,refdesk}-N.txt, pg-{old,new,two,pair}-N.txt.
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


def load_limited(p):
    """A phase the load generator could not offer in full (sent under 95 %)."""
    return p.get("sent_rate", p["offered"]) < 0.95 * p["offered"]


def highest(phases, p99_ms):
    """The highest offered rate before the first phase that fails: p99 at or
    over the limit, a message undelivered, or the load not offered in full.
    A string with ">=" when no phase failed (the sweep's top rate)."""
    best = 0.0
    for p in phases:
        if p["p99_us"] >= p99_ms * 1000 or p["undelivered"] > 0 or load_limited(p):
            return best
        best = p["offered"]
    return best if not phases else (best, "≥")


def stalled(p, p99_ms):
    """The disk probe (`bench --disk-probe`) found the disk stalled beyond
    the limit for 1 % of the phase or more: as many lines waited longer than
    the limit for their commit (I2), whatever the server did, so the phase
    could not have met it."""
    return p.get(f"disk_beyond_{p99_ms}ms", 0) >= 0.01


def highest_unstalled(phases, p99_ms):
    """As `highest`, but a phase that `stalled` neither passes nor fails: it
    is left out. None without the probe's figures, or if every phase stalled."""
    if any(f"disk_beyond_{p99_ms}ms" not in p for p in phases):
        return None
    kept = [p for p in phases if not stalled(p, p99_ms)]
    return highest(kept, p99_ms) if kept else None


def at(phases, offered, key):
    for p in phases:
        if p["offered"] == offered:
            return p[key]
    return None


def value(v):
    return v[0] if isinstance(v, tuple) else v


def median(values):
    """The median of every run's value; None unless every run has one."""
    if not values or any(v is None for v in values):
        return None
    return statistics.median(value(v) for v in values)


def fmt(v, unit=""):
    if v is None:
        return "—"
    mark = "≥ " if isinstance(v, tuple) else ""
    v = value(v)
    return f"{mark}{v:,.1f}{unit}" if v < 100 else f"{mark}{v:,.0f}{unit}"


def ratios(a, b):
    """The median of each run's own refdesk ÷ relay."""
    per_run = [None if x is None or y is None or value(x) == 0 else value(y) / value(x) for x, y in zip(a, b)]
    m = median(per_run)
    return "—" if m is None else f"{m:.2f}×"


def row(label, relay, refdesk, unit=""):
    print(f"| {label} | {fmt(median(relay), unit)} | {fmt(median(refdesk), unit)} | {ratios(relay, refdesk)} "
          f"| {', '.join(fmt(v) for v in relay)}; {', '.join(fmt(v) for v in refdesk)} |")


def sweep(out):
    servers = {s: [summaries(f) for f in runs(out, f"sweep-{s}-*.txt")] for s in ("relay", "refdesk")}
    if not any(servers.values()):
        return
    n = min(len(v) for v in servers.values())
    relay, refdesk = servers["relay"][:n], servers["refdesk"][:n]
    print(f"### Sweep ({n} runs; medians; refdesk ÷ relay is the median of each run's own ratio)\n")
    print("| figure | bare relay | refdesk | refdesk ÷ relay | runs (relay; refdesk) |")
    print("|---|---|---|---|---|")
    ms = lambda v: None if v is None else v / 1000
    for offered in (2000.0, 10000.0):
        row(f"server CPU per delivered message at {offered:,.0f} msg/s offered",
            [at(ph, offered, "cpu_us_per_msg") for ph in relay], [at(ph, offered, "cpu_us_per_msg") for ph in refdesk], " µs")
        row(f"p99 at {offered:,.0f} msg/s offered",
            [ms(at(ph, offered, "p99_us")) for ph in relay], [ms(at(ph, offered, "p99_us")) for ph in refdesk], " ms")
    for limit in (50, 5):
        row(f"highest offered msg/s with p99 < {limit} ms, nothing undelivered",
            [highest(ph, limit) for ph in relay], [highest(ph, limit) for ph in refdesk])
    # The relay writes nothing to disk: its phases count as they are.
    for limit in (50, 5):
        if refdesk and all(f"disk_beyond_{limit}ms" in p for ph in refdesk for p in ph):
            row(f"the same, p99 < {limit} ms, refdesk's phases in which the disk probe found the disk stalled beyond "
                f"{limit} ms for 1 % of the phase or more left out",
                [highest(ph, limit) for ph in relay], [highest_unstalled(ph, limit) for ph in refdesk])
    print()
    for s, all_runs in (("relay", relay), ("refdesk", refdesk)):
        print(f"#### Every phase, {s} (offered msg/s: CPU µs per message, p99 ms, undelivered[, the disk "
              "probe's longest fsync, the share of the phase it found the disk stalled beyond 5 ms / beyond 50 ms]; * the load "
              "generator sent under 95 % of it)\n")
        for i, ph in enumerate(all_runs, 1):
            cells = [f"{p['offered']:,.0f}{'*' if load_limited(p) else ''}: {p['cpu_us_per_msg']:.0f} µs, "
                     f"{p['p99_us'] / 1000:.1f} ms, {p['undelivered']:.0f}"
                     + (f", disk {p['disk_max_us'] / 1000:.1f} ms, {100 * p['disk_beyond_5ms']:.2f} % / "
                        f"{100 * p['disk_beyond_50ms']:.2f} %" if "disk_beyond_50ms" in p else "") for p in ph]
            print(f"- run {i}: " + " · ".join(cells))
        print()


def idle(out):
    def vals(key):
        return {s: [r[0][key] for f in runs(out, f"idle-{s}-*.txt") if (r := summaries(f)) and key in r[0]]
                for s in ("relay", "refdesk")}
    every = vals("kib_per_connection")
    if not any(every.values()):
        return
    print("### Idle sockets (8,000; medians)\n")
    print("| | bare relay (idle socket) | refdesk (waiting patron) | refdesk ÷ relay | runs (relay; refdesk) |")
    print("|---|---|---|---|---|")
    row("RSS per connection, 8,000 from none", every["relay"], every["refdesk"], " KiB")
    second = vals("kib_per_connection_second_half")
    if all(second.values()):
        row("RSS per connection, the second 4,000 alone", second["relay"], second["refdesk"], " KiB")
    cpu = vals("cpu_us_per_connection")
    if all(cpu.values()):
        row("server CPU to open a connection", cpu["relay"], cpu["refdesk"], " µs")
    print()


def throughput(path):
    with open(path) as f:
        m = re.search(r"throughput: (\d+) msg/s", f.read())
    return float(m.group(1)) if m else None


def pg(out):
    vals = {s: [throughput(f) for f in runs(out, f"pg-{s}-*.txt")] for s in ("old", "new", "two", "pair")}
    if not any(vals.values()):
        return
    print("### PostgreSQL saturation (500 chats × 20 msg/s/side, 20,000 offered; delivered msg/s, medians)\n")
    print("| set-up | delivered msg/s | ÷ old build, one node (median of each run's) | runs |")
    print("|---|---|---|---|")
    for s, label in (("old", "old build, one node"), ("new", "this build, one node"),
                     ("two", "this build, two nodes (PostgreSQL + NATS), patrons on one and librarians on the other"),
                     ("pair", "this build, two nodes, each chat's two sides on one node")):
        if not vals[s]:
            continue
        print(f"| {label} | {fmt(median(vals[s]))} | {ratios(vals['old'], vals[s])} | {', '.join(fmt(v) for v in vals[s])} |")
    print()


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else sys.exit("usage: bench-pinned-summary.py OUT")
    sweep(out)
    idle(out)
    pg(out)
