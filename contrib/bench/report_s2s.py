#!/usr/bin/python3
"""contrib/bench/report_s2s.py — the "Federation" section of
doc/performance.md, from the s2s runs of contrib/bench/compare.sh.

Owns that section only: it reads the runs labelled s2s-* in the results
(JSON lines of report.py add), writes the section between the markers
<!-- federation: ... --> and <!-- /federation -->, replacing the one
already there, or before the soak section (or at the end) when there is
none, and leaves the rest of the file as it is.  report.py keeps the
section when it writes the rest.  Standard library only.
"""
import argparse
import json
import math
import os
import sys

TITLE = {"tern": "Tern", "prosody": "Prosody", "ejabberd": "ejabberd"}
ORDER = ["tern", "prosody", "ejabberd"]
BEGIN = "<!-- federation: written by contrib/bench/compare.sh (report_s2s.py); kept by report.py -->"
END = "<!-- /federation -->"


def num(v, digits=1):
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "n/a"
    if digits == 0:
        return "{:,}".format(int(round(v))).replace(",", " ")
    return "%.*f" % (digits, v)


def load(path):
    runs = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                run = json.loads(line)
                if run.get("label", "").startswith("s2s-"):
                    runs.append(run)
    return runs


def section(runs, a):
    by = {}
    for r in runs:
        by.setdefault(r["server"], {})[r["label"]] = r
    servers = [s for s in ORDER if s in by]
    out = [BEGIN, "## Federation: two servers of the same kind", ""]
    out.append(
        "Each server federating with a second instance of itself: a.test on 127.0.0.2 and "
        "b.test on 127.0.0.3, both pinned to the server core, each with a client and a server "
        "port on its own address; one dnsmasq answers the `_xmpp-server._tcp` SRV records and "
        "the addresses for all of them, and a private test CA issued both certificates, which "
        "every server checks on each link (no dialback).  tern-bench's `s2s` scenario logs in "
        "%s users on each server; user uK of a.test and uK of b.test send each other chat "
        "messages, so every message crosses the federated link (half each way).  CPU is that "
        "of both servers together in the measured window (%s s) over the messages delivered "
        "in it: what one federated message costs, reading it from the sender, the link, and "
        "writing it to the recipient.  Each pair of servers is freshly started for these "
        "runs and its links are opened first by one message each way, one after the other "
        "(`s2s-warm`), so the windows measure traffic on open links." % (a.users, a.duration))
    out.append("")
    rates = sorted({int(l[len("s2s-at-"):]) for s in servers for l in by[s]
                    if l.startswith("s2s-at-")})
    if rates:
        out.append("| server | rate asked | delivered/s | CPU µs/msg, both | a.test | b.test "
                   "| latency p50 | p99 | lost |")
        out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        for s in servers:
            for rate in rates:
                run = by[s].get("s2s-at-%d" % rate)
                res = run.get("result") if run else None
                if not res:
                    out.append("| %s | %d | failed | | | | | | |" % (TITLE[s], rate))
                    continue
                out.append("| %s | %d | %s | %s | %s | %s | %s ms | %s ms | %s |" % (
                    TITLE[s], rate, num(res.get("delivered_per_s"), 0),
                    num(res.get("servers_cpu_us_per_msg")),
                    num(res.get("server_cpu_us_per_msg")),
                    num(res.get("server2_cpu_us_per_msg")),
                    num(res.get("latency_ms_p50"), 2), num(res.get("latency_ms_p99"), 2),
                    num(res.get("lost"), 0)))
        out.append("")
        tern = {rate: (by.get("tern", {}).get("s2s-at-%d" % rate) or {}).get("result")
                for rate in rates}
        ratios = []
        for s in servers:
            if s == "tern":
                continue
            for rate in rates:
                other = (by[s].get("s2s-at-%d" % rate) or {}).get("result")
                t = tern.get(rate)
                if t and other and t.get("servers_cpu_us_per_msg") and \
                        other.get("servers_cpu_us_per_msg"):
                    ratios.append("%s %.1f× at %d msgs/s" % (
                        TITLE[s], other["servers_cpu_us_per_msg"] / t["servers_cpu_us_per_msg"],
                        rate))
        if ratios:
            out.append("CPU per federated message, the peer over Tern: " + ", ".join(ratios) +
                       " (the target is ≥ 3× ejabberd and ≥ 10× Prosody).")
            out.append("")
    out.append("The first message of a new link: one user on each side, freshly started servers "
               "that have never been in touch, each sending one message a second; the first "
               "message each way waits for the DNS lookup, TCP, TLS and the servers' "
               "authentication of each other (target: under 50 ms on loopback).  Memory per "
               "connection: on fresh servers again, the user of a.test also asks each of %s "
               "other domains of the b.test server (l1.b.test ...) for its disco#info, so each "
               "server opens a link to the other for each domain and gets one back: the growth "
               "of each server's RSS over the run divided by the s2s connections the kernel shows "
               "it has open at the end (in brackets: 2N + 2 when each way has a connection of "
               "its own, N + 1 when one connection carries both ways, XEP-0288); the answer's "
               "round trip includes opening the links." % a.links)
    out.append("")
    out.append("| server | first message, slower way | faster way | domains answering "
               "| answer p50 | RSS per s2s connection, a.test | b.test |")
    out.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for s in servers:
        res = (by[s].get("s2s-first") or {}).get("result") or {}
        links = (by[s].get("s2s-links") or {}).get("result") or {}
        first = ("%s ms | %s ms" % (num(res.get("first_msg_ms_max"), 1),
                                    num(res.get("first_msg_ms_p50"), 1))) if res else "failed |"
        conns = (by[s].get("s2s-links-conns") or {}).get("result") or {}

        def per(grew, n):
            return grew / n if grew is not None and n else None

        mem = ("%s/%s | %s ms | %s KiB (%s) | %s KiB (%s)" % (
            num(links.get("link_answers"), 0), num(links.get("links"), 0),
            num(links.get("link_rtt_ms_p50"), 1),
            num(per(links.get("server_rss_link_kib"), conns.get("s2s_conns_a")), 1),
            num(conns.get("s2s_conns_a"), 0),
            num(per(links.get("server2_rss_link_kib"), conns.get("s2s_conns_b")), 1),
            num(conns.get("s2s_conns_b"), 0))) if links else "n/a | | |"
        out.append("| %s | %s | %s |" % (TITLE[s], first, mem))
    out.append("")
    notes = []
    for s in servers:
        for label, run in sorted(by[s].items()):
            if run.get("result") is None:
                notes.append("- %s %s failed: %s" % (TITLE[s], label, run.get("error", "")))
            elif run.get("exit") == 3:
                notes.append("- %s %s: the load tool was at the end of its core "
                             "(latencies include its queueing)" % (TITLE[s], label))
    if notes:
        out.extend(notes)
        out.append("")
    if a.busy:
        out.append("Load average of the machine when the section was written: %s%s." % (
            a.busy, " (the machine was shared with other work: figures are rough)"
            if float(a.busy.split()[0]) > 0.5 else ""))
        out.append("")
    out.append(END)
    return "\n".join(out)


def splice(old, new):
    b = old.find("<!-- federation:")
    if b >= 0:
        e = old.find(END, b)
        e = len(old) if e < 0 else e + len(END)
        return old[:b] + new + old[e:]
    soak = old.find("<!-- soak:")
    if soak >= 0:
        return old[:soak] + new + "\n\n" + old[soak:]
    return old.rstrip("\n") + "\n\n" + new + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--users", default="?")
    ap.add_argument("--duration", default="?")
    ap.add_argument("--links", default="?")
    ap.add_argument("--busy", default="", help="the machine's load average")
    a = ap.parse_args()
    runs = load(a.results)
    if not runs:
        print("report_s2s.py: no s2s runs in %s" % a.results, file=sys.stderr)
        return 1
    try:
        with open(a.output) as f:
            old = f.read()
    except FileNotFoundError:
        old = ""
    os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
    with open(a.output, "w") as f:
        f.write(splice(old, section(runs, a)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
