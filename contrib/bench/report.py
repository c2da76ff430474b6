#!/usr/bin/python3
"""contrib/bench/report.py — results and report of the comparison run.

Owns the results file of contrib/bench/compare.sh (one JSON object per
tern-bench run: server, label, exit status, arguments and the tool's own
JSON line) and the markdown made from it, doc/performance.md: the machine,
the versions, the parameters, the headline (server CPU per delivered chat
message at the same fixed rates for every server, beside the chat peak),
one table of figures per scenario with Tern's factor against each peer,
how each server is configured, and the runs that were discarded because
the load tool, not the server, was the bottleneck.

    report.py add --results F --server S --label L --exit RC --json FILE [--args A]
    report.py get --results F --server S --label L --key K
    report.py step --results F --server S --label L
    report.py write --results F --params FILE --output doc/performance.md

Standard library only.
"""

import argparse
import datetime
import json
import math
import os
import platform
import re
import subprocess
import sys

SERVERS = ["tern", "prosody", "ejabberd"]
MACHINE = "machine"  # the "server" of runs that measure the machine itself (tern-bench floor)
TITLE = {"tern": "Tern", "prosody": "Prosody", "ejabberd": "ejabberd"}
TOOL_BOUND_EXIT = 3  # tern-bench's exit status for a tool-bound run
TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


# ---- results file ---------------------------------------------------------

def load(path):
    runs = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if line:
                try:
                    runs.append(json.loads(line))
                except ValueError as e:
                    sys.exit("report.py: %s:%d: %s" % (path, n, e))
    return runs


def last_run(runs, server, label):
    found = None
    for r in runs:
        if r.get("server") == server and r.get("label") == label:
            found = r
    return found


def tool_bound(run):
    res = run.get("result") or {}
    return run.get("exit") == TOOL_BOUND_EXIT or res.get("tool_bound") is True


def usable(run):
    """A run whose figures are the server's: it finished and was not tool bound."""
    return (run is not None and run.get("result") is not None
            and run.get("exit") in (0, TOOL_BOUND_EXIT) and not tool_bound(run))


# A chat step the server kept up with delivered at least this share of what
# was asked, lost nothing and kept p99 under this many ms.
KEPT_UP_SHARE = 0.95
KEPT_UP_P99_MS = 1000


def step_verdict(run):
    """keeps-up, behind or failed: how one step of the chat peak search
    ended.  The load tool's CPU does not decide it: messages the server
    delivered were delivered, whoever was busier (see peak_run)."""
    if run is None or run.get("result") is None:
        return "failed"
    res = run["result"]
    asked = res.get("msg_rate_target") or 0
    if ((res.get("delivered_per_s") or 0) < KEPT_UP_SHARE * asked or (res.get("lost") or 0) > 0
            or (res.get("latency_ms_p99") or 0) > KEPT_UP_P99_MS):
        return "behind"
    return "keeps-up"


def step_number(label):
    m = re.match(r"chat-step(\d+)$", label or "")
    return int(m.group(1)) if m else None


def rate_of(label):
    """The rate of a fixed-rate chat run (label chat-at-RATE), or None."""
    m = re.match(r"chat-at-(\d+)$", label or "")
    return int(m.group(1)) if m else None


def chat_rates(runs, server):
    """A server's fixed-rate chat runs, {rate: its last run}."""
    found = {}
    for r in runs:
        n = rate_of(r.get("label"))
        if r.get("server") == server and n is not None:
            found[n] = r
    return found


def cpu_per_msg(res):
    """Server CPU (µs) per message delivered in the window: the key
    tern-bench gives, or the same from server_cpu_pct and delivered_per_s
    (results of an older tern-bench)."""
    v = res.get("server_cpu_us_per_msg")
    if v is None:
        pct, per_s = res.get("server_cpu_pct"), res.get("delivered_per_s")
        if pct is not None and per_s:
            v = pct / 100.0 * 1e6 / per_s
    return v


def chat_steps(runs, server):
    steps = {}
    for r in runs:
        n = step_number(r.get("label"))
        if r.get("server") == server and n is not None:
            steps[n] = r
    return [steps[n] for n in sorted(steps)]


def peak_run(runs, server):
    """The peak of a server's chat steps, as a run of its own.

    A step the server kept up with proves it delivers that many messages
    per second, even when the load tool was at the end of its core too.
    A step where the server fell behind gives its capacity, but only when
    the tool was not the bottleneck (a busy tool reads late, which looks
    like a slow server).  The peak is the most delivered per second over
    those steps; it is a lower bound (peak_lower_bound) unless the search
    ended on a step the server fell behind in with the tool below its
    limit.  Also: peak_steps (steps run), peak_stop (the last verdict,
    "behind, tool bound" when the tool was busy too)."""
    ordered = chat_steps(runs, server)
    if not ordered:
        return None
    best = None
    for r in ordered:
        v = step_verdict(r)
        counts = v == "keeps-up" or (v == "behind" and not tool_bound(r))
        if counts and (best is None or r["result"].get("delivered_per_s", 0) >
                       best["result"].get("delivered_per_s", 0)):
            best = r
    last = ordered[-1]
    stop = step_verdict(last)
    conclusive = stop == "behind" and not tool_bound(last)
    if stop == "behind" and tool_bound(last):
        stop = "behind, tool bound"
    peak = {"server": server, "label": "chat-peak", "exit": 0, "args": "", "result": None}
    if best is not None:
        res = dict(best["result"])
        res.update(peak_steps=len(ordered), peak_stop=stop, peak_lower_bound=not conclusive,
                   peak_step_label=best["label"], tool_bound=False)
        peak["result"] = res
    else:
        peak["exit"] = last.get("exit", 1)
        peak["error"] = "no step of the peak search counts (last: %s)" % stop
    return peak


def fmt_us(v):
    """A cost in µs: one decimal below 100, none above."""
    if v is None or not isinstance(v, (int, float)):
        return fmt_num(v)
    return fmt_num(v, 0 if abs(v) >= 100 else 1)


def behind_why(res):
    """Why a chat run counts as behind, in a few words."""
    asked = res.get("msg_rate_target") or 0
    why = []
    if (res.get("logins_ok") or 0) == 0:
        return "no login succeeded"
    if (res.get("delivered_per_s") or 0) < KEPT_UP_SHARE * asked:
        why.append("%s/s delivered" % fmt_num(res.get("delivered_per_s") or 0, 0))
    if (res.get("lost") or 0) > 0:
        why.append("%s lost" % fmt_num(res.get("lost"), 0))
    if (res.get("latency_ms_p99") or 0) > KEPT_UP_P99_MS:
        why.append("p99 %s s" % fmt_num(res["latency_ms_p99"] / 1000.0, 1))
    return ", ".join(why) or "failed"


def headline_table(runs, servers):
    """Server CPU per delivered message at each fixed rate, and the peak.

    A cell is the µs of server CPU per message; where the server fell
    behind (step_verdict) it says so with the rate it delivered; a run
    where the load tool was the bottleneck is struck out.  The factor is
    the peer's cost over Tern's, at the same asked rate."""
    rates = sorted({n for s in servers for n in chat_rates(runs, s)})
    peers = [s for s in servers if s != "tern"]
    head = ["chat, messages/s asked"] + [TITLE[s] for s in servers]
    if "tern" in servers:
        head += ["Tern vs %s" % TITLE[p] for p in peers]
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for rate in rates:
        cells, values = [], {}
        for s in servers:
            run = chat_rates(runs, s).get(rate)
            res = (run or {}).get("result")
            if run is None:
                cells.append("not run")
                continue
            if res is None:
                cells.append("failed")
                continue
            v = cpu_per_msg(res)
            text = "%s µs" % fmt_us(v) if v is not None else "–"
            if step_verdict(run) != "keeps-up":
                text += " (behind: %s)" % behind_why(res)
            if tool_bound(run):
                cells.append("~~%s~~ †" % text)
            else:
                cells.append(text)
                values[s] = v
        row = ["CPU per message at %s/s" % fmt_num(rate, 0)] + cells
        if "tern" in servers:
            for p in peers:
                f = factor(values.get("tern"), values.get(p), "low")
                row.append("" if f is None else "×%s" % fmt_num(f, 1))
        lines.append("| " + " | ".join(row) + " |")
    cells, values, lower = [], {}, {}
    for s in servers:
        peak = peak_run(runs, s)
        res = (peak or {}).get("result")
        if peak is None:
            cells.append("not run")
        elif res is None:
            cells.append("failed")
        else:
            v = res.get("delivered_per_s")
            lower[s] = res.get("peak_lower_bound") is True
            cells.append(("≥ " if lower[s] else "") + fmt_num(v, 0))
            values[s] = v
    if any(c != "not run" for c in cells):
        row = ["peak: messages delivered/s"] + cells
        if "tern" in servers:
            for p in peers:
                f = factor(values.get("tern"), values.get(p), "high")
                row.append("" if f is None or lower.get(p) else
                           "%s×%s" % ("≥ " if lower.get("tern") else "", fmt_num(f, 1)))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def rates_table(runs, servers):
    """Every fixed-rate chat run, with its latency and both sides' CPU."""
    lines = ["| server | asked (msgs/s) | delivered (msgs/s) | server CPU (%) | "
             "server CPU per message (µs) | p50 (ms) | p99 (ms) | tool CPU (%) | run |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for s in servers:
        found = chat_rates(runs, s)
        for rate in sorted(found):
            r = found[rate]
            res = r.get("result") or {}
            v = step_verdict(r)
            if tool_bound(r):
                v += ", tool above %d%%" % 90
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                TITLE[s], fmt_num(rate, 0), fmt_num(res.get("delivered_per_s"), 0),
                fmt_num(res.get("server_cpu_pct"), 0), fmt_us(cpu_per_msg(res)),
                fmt_num(res.get("latency_ms_p50")), fmt_num(res.get("latency_ms_p99")),
                fmt_num(res.get("tool_cpu_max_pct"), 0), v))
    return "\n".join(lines)


def steps_table(runs, servers):
    """Every step of the peak search: the latency a server gives as the
    load grows."""
    lines = ["| server | asked (msgs/s) | delivered (msgs/s) | p50 (ms) | p99 (ms) | "
             "server CPU (%) | server CPU per message (µs) | tool CPU (%) | step |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for s in servers:
        for r in chat_steps(runs, s):
            res = r.get("result") or {}
            v = step_verdict(r)
            if tool_bound(r):
                v += ", tool above %d%%" % 90
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                TITLE[s], fmt_num(res.get("msg_rate_target"), 0),
                fmt_num(res.get("delivered_per_s"), 0), fmt_num(res.get("latency_ms_p50")),
                fmt_num(res.get("latency_ms_p99")), fmt_num(res.get("server_cpu_pct"), 0),
                fmt_us(cpu_per_msg(res)), fmt_num(res.get("tool_cpu_max_pct"), 0), v))
    return "\n".join(lines)


def read_json_line(path):
    """The last line of path that parses as a JSON object, or None."""
    try:
        with open(path) as f:
            lines = [l.strip() for l in f if l.strip()]
    except OSError:
        return None
    for line in reversed(lines):
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                return obj
    return None


def cmd_add(a):
    result = read_json_line(a.json)
    run = {"server": a.server, "label": a.label, "exit": a.exit, "args": a.args,
           "result": result}
    if result is None:
        err = a.json[:-5] + ".err" if a.json.endswith(".json") else None
        tail = ""
        if err and os.path.exists(err):
            with open(err, errors="replace") as f:
                tail = " ".join(f.read().strip().splitlines()[-3:])
        run["error"] = tail or "no JSON line from tern-bench"
    with open(a.results, "a") as f:
        f.write(json.dumps(run, sort_keys=True) + "\n")
    if result is None:
        print("  %s %s: FAILED (exit %d): %s" % (a.server, a.label, a.exit, run["error"]))
        return 0
    keys = ["logins_ok", "logins_failed", "server_rss_per_session_kib", "delivered_per_s",
            "latency_ms_p99", "presence_in_per_s", "setup_s", "server_cpu_pct",
            "server_cpu_us_per_msg",
            "tool_cpu_max_pct", "rtt_us_p50", "rtt_us_p999", "stalls_per_s"]
    shown = ", ".join("%s=%s" % (k, fmt_num(result[k])) for k in keys if k in result)
    print("  %s %s: exit %d%s; %s" % (a.server, a.label, a.exit,
                                      " TOOL-BOUND" if tool_bound(run) else "", shown))
    return 0


def cmd_get(a):
    run = run_for(load(a.results), a.server, a.label)
    if a.key == "tool_bound" and run is not None:
        print("true" if tool_bound(run) else "false")
        return 0
    if run is None or run.get("result") is None or a.key not in run["result"]:
        return 1
    v = run["result"][a.key]
    print(json.dumps(v) if isinstance(v, bool) else v)
    return 0


def cmd_step(a):
    print(step_verdict(last_run(load(a.results), a.server, a.label)))
    return 0


# ---- the markdown -------------------------------------------------------------

def fmt_num(v, digits=None):
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return "–"
    if digits is None:
        a = abs(v)
        digits = 0 if a >= 100 or float(v).is_integer() else (1 if a >= 10 else 2)
    return "{:,.{d}f}".format(v, d=digits)


# (label of the run, key in its JSON, row title, scale, digits, better)
# better: "high", "low" or None (no factor).
FIGURES = {
    "connect": [
        ("connect", "logins_ok", "idle authenticated TLS sessions held", 1, 0, "high"),
        ("connect", "logins_failed", "logins failed", 1, 0, None),
        ("connect", "logins_per_s", "logins per second (ramp)", 1, None, None),
        ("connect", "login_ms_p99", "login time p99 (ms)", 1, None, "low"),
        ("connect", "server_rss_before_kib", "server RSS before (MiB)", 1 / 1024, 1, "low"),
        ("connect", "server_rss_after_kib", "server RSS with the sessions (MiB)", 1 / 1024, 1,
         "low"),
        ("connect", "server_rss_per_session_kib", "RSS growth per session (KiB)", 1, 1, "low"),
        ("connect", "server_cpu_per_login_ms", "server CPU per login (ms)", 1, 3, "low"),
        ("connect", "server_cpu_hold_s", "server CPU while idle (s)", 1, 2, "low"),
        ("connect", "tool_cpu_max_pct", "load tool CPU, busiest process (%)", 1, 0, None),
    ],
    "chat-peak": [
        ("chat-peak", "peak_steps", "steps run", 1, 0, None),
        ("chat-peak", "peak_stop", "the search ended with", 1, None, None),
        ("chat-peak", "msg_rate_target", "messages/s asked for in the best step", 1, 0, None),
        ("chat-peak", "delivered_per_s", "peak: messages delivered/s", 1, 0, "high"),
        ("chat-peak", "latency_ms_p50", "latency p50 in that step (ms)", 1, None, None),
        ("chat-peak", "latency_ms_p99", "latency p99 in that step (ms)", 1, None, None),
        ("chat-peak", "server_cpu_pct", "server CPU (% of a core)", 1, 0, None),
        ("chat-peak", "tool_cpu_max_pct", "load tool CPU, busiest process (%)", 1, 0, None),
    ],
    "chat": [
        ("chat", "msg_rate_target", "messages/s sent", 1, 0, None),
        ("chat", "delivered_per_s", "messages delivered/s", 1, 0, "high"),
        ("chat", "latency_ms_p50", "latency p50 (ms)", 1, None, "low"),
        ("chat", "latency_ms_p99", "latency p99 (ms)", 1, None, "low"),
        ("chat", "lost", "messages lost", 1, 0, "low"),
        ("chat", "server_cpu_pct", "server CPU (% of a core)", 1, 0, "low"),
        ("chat", "server_rss_after_kib", "server RSS (MiB)", 1 / 1024, 1, "low"),
        ("chat", "tool_cpu_max_pct", "load tool CPU, busiest process (%)", 1, 0, None),
    ],
    "presence": [
        ("presence-setup", "setup_s", "roster setup or check over XMPP (s)", 1, 1, None),
        ("presence", "presence_rate_target", "presence changes/s sent", 1, 0, None),
        ("presence", "presence_in_per_s", "presence stanzas delivered/s", 1, 0, "high"),
        ("presence", "server_cpu_pct", "server CPU (% of a core)", 1, 0, "low"),
        ("presence", "server_rss_after_kib", "server RSS (MiB)", 1 / 1024, 1, "low"),
        ("presence", "tool_cpu_max_pct", "load tool CPU, busiest process (%)", 1, 0, None),
    ],
}

SECTIONS = [
    ("connect", "Idle sessions (connect)",
     "{USERS} accounts log in over STARTTLS with SCRAM-SHA-1 at {RATE}/s, fetch their "
     "roster, send presence and stay idle for {HOLD} s.  RSS growth per session is (RSS "
     "with the sessions − RSS before) / sessions.  Where the load tool was the bottleneck, "
     "the server is restarted and the run made again at half the rate (connect-retry "
     "under Runs)."),
    ("chat-peak", "Chat: the peak",
     "{CHAT_USERS} users in pairs, each sender paced every millisecond.  The rate asked "
     "for starts at {CHAT_START_RATE} messages/s and grows {CHAT_STEP} times per step of "
     "{CHAT_STEP_DURATION} s (at most {CHAT_STEPS} steps) until the server falls behind "
     "(delivers under 95% of the rate, loses messages or has a p99 over 1 s: *behind*).  "
     "The peak is the most messages delivered per second in a step the server kept up "
     "with, or fell behind in while the load tool was below 90% of its core (a busier "
     "tool reads late, which looks like a slow server).  Messages a server delivered "
     "count even when the tool was busy too: they arrived.  ≥ marks a peak that is only "
     "a lower bound, because the server never fell behind while the tool had room: its "
     "real peak is higher, and a factor computed from it is a lower bound too.  Every "
     "step is in the next table."),
    ("chat", "Chat at {CHAT_RATE} messages/s",
     "The same pairs at {CHAT_RATE} messages/s for {CHAT_DURATION} s (BENCH_CHAT_RATE): "
     "what each server delivers, and how fast."),
    ("presence", "Presence with rosters of {ROSTER}",
     "{PRES_USERS} users of their own (u{PRES_FIRST} on) in circles of {ROSTER1} who all "
     "have each other in their roster with subscription both; {PRES_RATE} users per second "
     "go offline or come back online for {PRES_DURATION} s, and every presence stanza the "
     "clients receive is counted.  {ROSTER_HOW}"),
]


# What was tuned in each peer and why: keep in step with
# contrib/bench/prosody.cfg.lua.in and ejabberd.yml.in (and compare.sh's
# ejabberdctl.cfg).
TUNING = """\
- **Tern:** as an admin would run it (contrib/bench/tern.yml.in): its
  defaults, log level warn, no server-initiated pings.
- **Prosody** (Lua 5.4): the *epoll* network backend (the default since
  0.12, which Prosody's documentation recommends over *select* for many
  connections; *event*, on libevent, did no better here), and Lua's
  **generational garbage collector** (`gc = { mode = "generational" }`,
  from Prosody's "advanced GC" documentation: its defaults keep memory
  low at the cost of CPU).  With the default incremental collector
  (pause 105 %, step multiplier 500) a profile of the chat run (perf on
  the lua5.4 process at 2 000 msgs/s) showed about half of Prosody's
  CPU in the collector walking its objects (its sweep loop alone took
  28 % of the samples); the generational collector halves Prosody's CPU
  per message (≈ 245 µs to ≈ 115 µs at 2 000 msgs/s in the runs made
  while tuning) for some more memory.  What is left is mostly the Lua
  interpreter running Prosody's code (56 % of the samples), malloc
  (19 %) and the kernel (13 %); expat and OpenSSL take 5 and 7 %.
  `opportunistic_writes` (write at once instead of on the next loop
  turn) saved nothing and left logins hanging after a run, so it is off.
  No `limits` module (no c2s rate limit), logging at warn to a file, a
  listen backlog of 4096.  Left as they are: TLS (LuaSec on OpenSSL, TLS 1.3 like the others) and
  the 8 KiB read size (more than a message).
- **ejabberd:** no c2s traffic shaper (`shaper: none` on the listener, no
  `shaper_rules`), `max_fsm_queue` raised to 100 000 so that a burst does
  not close a session, caches as large as the number of accounts (no
  churn), logging at warning; one Erlang scheduler for its one core
  (`+S 1:1`) without busy-waiting (`+sbwt none`, also for the dirty
  schedulers), so that its CPU time counts work only; up to 65 536
  Erlang ports (the default of ejabberdctl.cfg, which counts two or
  three per connection) and a million Erlang processes.
"""


def run_for(runs, server, label):
    """The run of (server, label); for connect, a usable retry wins."""
    if label == "connect":
        retry = last_run(runs, server, "connect-retry")
        if retry is not None and usable(retry):
            return retry
    if label == "chat-peak":
        return peak_run(runs, server)
    return last_run(runs, server, label)


def factor(tern, peer, better, digits=None):
    """How many times better Tern is; None when it means nothing (no
    direction, a value missing, negative, or one that shows as zero)."""
    if better is None or tern is None or peer is None:
        return None
    try:
        tern, peer = float(tern), float(peer)
    except (TypeError, ValueError):
        return None
    if fmt_num(tern, digits).strip("0.,") == "" or fmt_num(peer, digits).strip("0.,") == "":
        return None
    if tern < 0 or peer < 0:
        return None  # e.g. memory that fell: no figure to compare
    if better == "high":
        return tern / peer if peer > 0 else None
    return peer / tern if tern > 0 else None


def table(runs, section, servers):
    peers = [s for s in servers if s != "tern"]
    head = ["figure"] + [TITLE[s] for s in servers]
    if "tern" in servers:
        head += ["Tern vs %s" % TITLE[p] for p in peers]
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for label, key, title, scale, digits, better in FIGURES[section]:
        cells, values, lower = [], {}, {}
        for s in servers:
            run = run_for(runs, s, label)
            if run is None:
                cells.append("not run")
                continue
            res = run.get("result")
            if res is None:
                cells.append("failed")
                continue
            v = res.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                v = v * scale
            text = fmt_num(v, digits)
            bound = key == "delivered_per_s" and res.get("peak_lower_bound") is True
            if bound:
                text = "≥ " + text
                lower[s] = True
            if tool_bound(run):
                cells.append("~~%s~~ †" % text if v is not None else "†")
            else:
                cells.append(text)
                values[s] = v
        row = [title] + cells
        if "tern" in servers:
            for p in peers:
                f = factor(values.get("tern"), values.get(p), better, digits)
                if f is None or lower.get(p):
                    row.append("")  # a peer's lower bound gives no factor
                else:
                    row.append("%s×%s" % ("≥ " if lower.get("tern") else "", fmt_num(f, 2)))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def and_list(items):
    """"a", "a and b", "a, b and c"."""
    return " and ".join(items) if len(items) < 3 else ", ".join(items[:-1]) + " and " + items[-1]


def sh(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60,
                              check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def pkg_version(name):
    return sh(["dpkg-query", "-W", "-f=${Version}", name]) or "not installed"


def machine():
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    try:
        with open("/etc/debian_version") as f:
            debian = f.read().strip()
    except OSError:
        debian = "unknown"
    return [("CPU", "%s, %d cores" % (model, os.cpu_count() or 0)),
            ("memory", "%.1f GiB" % (mem_kib / 1024 / 1024)),
            ("kernel", "%s %s" % (platform.system(), platform.release())),
            ("Debian", debian),
            ("open files (hard limit)", sh(["sh", "-c", "ulimit -Hn"]))]


def floor_rows(runs, params):
    """The machine's own latency between the server's CPU and the tool's
    (tern-bench floor): every latency in the report includes it."""
    res = (last_run(runs, MACHINE, "floor") or {}).get("result")
    if not res:
        return []
    return [("latency floor, CPU %s ↔ CPU %s" % (params.get("SERVER_CPU"), params.get("TOOL_CPU")),
             "a one-byte round trip every 0.5 ms for %s s, no server (`tern-bench floor`): "
             "p50 %s µs, p99 %s µs, p99.9 %s µs, max %s µs; %s round trips a second over 1 ms"
             % (fmt_num(res.get("duration_s"), 0), fmt_num(res.get("rtt_us_p50"), 0),
                fmt_num(res.get("rtt_us_p99"), 0), fmt_num(res.get("rtt_us_p999"), 0),
                fmt_num(res.get("rtt_us_max"), 0), fmt_num(res.get("stalls_per_s"), 1)))]


def versions(params):
    tern = sh([params.get("TERND", "ternd"), "--version"]) or "unknown"
    commit = sh(["git", "-C", TOP, "rev-parse", "--short", "HEAD"])
    if commit and sh(["git", "-C", TOP, "status", "--porcelain", "--untracked-files=no"]):
        commit += " with local changes"
    prosody = sh(["sh", "-c", "prosodyctl about 2>/dev/null | sed -n 's/^Prosody //p' | head -n1"])
    return [("Tern", "%s (commit %s), gcc -O2" % (tern, commit or "?")),
            ("Prosody", "%s (Debian package %s), Lua %s" % (
                prosody or "?", pkg_version("prosody"), pkg_version("lua5.4"))),
            ("ejabberd", "Debian package %s, Erlang/OTP %s" % (
                pkg_version("ejabberd"), pkg_version("erlang-base"))),
            ("OpenSSL", "%s (libssl3 %s)" % (sh(["openssl", "version"]), pkg_version("libssl3"))),
            ("libevent", pkg_version("libevent-2.1-7")),
            ("SQLite", pkg_version("libsqlite3-0"))]


def cmd_write(a):
    runs = load(a.results)
    params = {}
    with open(a.params) as f:
        for line in f:
            if "=" in line:
                k, v = line.rstrip("\n").split("=", 1)
                params[k] = v
    servers = [s for s in SERVERS if s in params.get("SERVERS", " ".join(SERVERS)).split()]
    fmt = dict(params)
    try:
        fmt["ROSTER1"] = str(int(params.get("ROSTER", "0")) + 1)
    except ValueError:
        fmt["ROSTER1"] = "?"
    fmt.setdefault("CHAT_RATE", "?")
    fmt.setdefault("PRES_FIRST", "?")
    pre = [TITLE[x] for x in SERVERS if x in params.get("ROSTER_PRELOAD", "").split()
           and x in servers]
    xmpp = [TITLE[x] for x in servers if TITLE[x] not in pre]
    how = []
    if xmpp:
        how.append("%s built the rosters over XMPP (tern-bench --setup: subscribe and "
                   "pre-approval for every contact)" % " and ".join(xmpp))
    if pre:
        how.append("%s had them written into %s storage before the run (over XMPP that "
                   "costs them minutes of CPU per circle, more than the run's budget), and "
                   "tern-bench --setup only checked them" % (" and ".join(pre),
                                                             "its" if len(pre) == 1 else "their"))
    fmt["ROSTER_HOW"] = ("; ".join(how) + ".") if how else ""

    out = []
    out.append("# Performance: Tern, Prosody and ejabberd\n")
    out.append("Measured by `contrib/bench/compare.sh` on %s, in %s min; regenerate with "
               "`sudo contrib/bench/compare.sh` (it rewrites this file).  Each server ran alone, "
               "pinned to CPU %s; the load tool tern-bench ran pinned to CPU %s.  A factor is "
               "how many times better Tern does than the peer on that figure (above 1: Tern "
               "is better).  † marks a run discarded because the load tool, not the server, "
               "was the bottleneck (a tern-bench process above 90%% of its core): its figures "
               "are shown struck out and get no factor.\n"
               % (datetime.date.today().isoformat(),
                  fmt_num(int(params.get("ELAPSED_S", "0")) / 60, 1),
                  params.get("SERVER_CPU", "0"), params.get("TOOL_CPU", "1")))
    out.append("How these figures compare with the targets, what limits Tern and where its "
               "time goes: [performance-analysis.md](performance-analysis.md) (written by "
               "hand, not by this script).\n")

    if any(rate_of(r.get("label")) is not None for r in runs):
        out.append("## Headline: server CPU per chat message\n")
        out.append(
            "What one message costs each server at the same moderate rates: %s users in "
            "pairs send %s messages/s in total for %s s each, one message per write (the "
            "load tool paces the senders every millisecond, round robin), on a freshly "
            "started server.  A cell is the server's CPU time (user + system, all threads "
            "and child processes, from /proc) in the measured window divided by the "
            "messages delivered in it, in µs.  Where a server could not keep up with a "
            "rate (delivered under 95%% of it, lost messages or a p99 over 1 s) the cell "
            "says *behind* and why; its cost is then the cost at the rate it did "
            "deliver.  The factor is the peer's cost over Tern's (above 1: Tern "
            "needs less CPU).  The peak, from the search further down, is beside them.\n"
            % (params.get("CHAT_USERS", "?"),
               and_list([fmt_num(int(x), 0) for x in params.get("CHAT_RATES", "").split()
                         if x.isdigit()]) or "?",
               params.get("CHAT_RATE_DURATION", "?")))
        out.append(headline_table(runs, servers) + "\n")
        out.append("Each run, with its latency (every latency includes the machine's own "
                   "floor, under Machine and versions):\n")
        out.append(rates_table(runs, servers) + "\n")

    for section, title, text in SECTIONS:
        labels = {f[0] for f in FIGURES[section]}
        if not any(r.get("label") in labels or (section == "chat-peak" and
                                                 step_number(r.get("label")) is not None)
                   for r in runs):
            continue
        out.append("## %s\n" % title.format(**fmt))
        out.append(text.format(**fmt) + "\n")
        out.append(table(runs, section, servers) + "\n")
        if section == "chat-peak":
            out.append("### Every step of the peak search\n")
            out.append("Latencies where the load tool was above 90% of its core are the "
                       "tool's as much as the server's (both sides queue).  Every latency "
                       "includes the machine's own floor between the two CPUs "
                       "(*latency floor* under Machine and versions).\n")
            out.append(steps_table(runs, servers) + "\n")

    out.append("## How each server is configured\n")
    out.append(
        "The same work for each, then each peer set up the way its own documentation "
        "recommends for performance (the configurations are contrib/bench/*.in).\n")
    out.append(
        "- **Same work for each:** STARTTLS required on one c2s port on 127.0.0.1, one "
        "ECDSA P-256 self-signed certificate, TLS 1.3 negotiated by all three; SCRAM-SHA-1 "
        "with %s PBKDF2 iterations for every account (the pre-flight check reads the count "
        "each server announces), a random salt per account; no in-band registration; "
        "logging at warn.\n"
        "- **Features:** roster and presence, service discovery, ping; no offline "
        "storage, archive, carbons, stream management or s2s on any of them (Prosody's "
        "automatic `offline` and `s2s` modules are disabled).  Tern's roster module also "
        "keeps the last-seen time (XEP-0012) of each user on logout, which the peers here "
        "do not.\n"
        "- **Storage:** SQLite (WAL) for Tern, Prosody's internal file storage, ejabberd's "
        "Mnesia.\n"
        "- **Limits:** open files %s for every process (the hard limit, which cannot be "
        "raised here); no rate limit or traffic shaper on any of them; stanzas up to "
        "256 KiB everywhere; TCP_NODELAY on both sides (Tern and ejabberd set it on "
        "accepted sockets, Prosody with `network_settings.nagle = false`; tern-bench on "
        "its own).\n"
        "- **One core each:** the server pinned with taskset to CPU %s, the load tool (%s "
        "process%s) to CPU %s.\n"
        "- **Figures from the OS:** server RSS and CPU time from /proc/PID of the server "
        "process (CPU time with its threads and child processes); latencies and rates "
        "from the load tool's clock.\n"
        % (params.get("ITERATIONS"), machine()[4][1], params.get("SERVER_CPU"),
           params.get("PROCESSES"), "" if params.get("PROCESSES") == "1" else "es",
           params.get("TOOL_CPU")))
    out.append(TUNING)

    out.append("## Accounts\n")
    out.append("Each server had %s accounts (u1 … u%s) made before its run.  Time to create "
               "them:\n" % (params.get("ACCOUNTS", params.get("USERS")),
                            params.get("ACCOUNTS", params.get("USERS"))))
    for s in servers:
        how = {"tern": "`ternctl adduser-batch` (SCRAM-SHA-1, -256 and -512 keys)",
               "prosody": "account files written by provision.py (SCRAM-SHA-1 keys)",
               "ejabberd": "the same credentials, then `ejabberd_auth:try_register/3` "
                           "inside the node"}[s]
        out.append("- %s: %s s, %s" % (TITLE[s], params.get("PROVISION_S_" + s, "?"), how))
    out.append("")

    out.append("## Machine and versions\n")
    out.append("| | |\n|---|---|")
    for k, v in machine() + floor_rows(runs, params) + versions(params):
        out.append("| %s | %s |" % (k, v))
    out.append("")

    out.append("## Parameters\n")
    out.append("```")
    for k in sorted(params):
        if not k.startswith("PROVISION_S_") and k not in ("TERND", "TERN_BENCH"):
            out.append("%s=%s" % (k, params[k]))
    out.append("```\n")

    out.append("## Runs\n")
    out.append("| server | run | exit | tool CPU max (%) | tool bound | arguments |")
    out.append("|---|---|---:|---:|---|---|")
    for r in runs:
        res = r.get("result") or {}
        args = re.sub(r"\s+", " ", r.get("args") or "")
        out.append("| %s | %s | %s | %s | %s | `%s` |" % (
            TITLE.get(r.get("server"), r.get("server")), r.get("label"), r.get("exit"),
            fmt_num(res.get("tool_cpu_max_pct"), 0),
            "† discarded" if tool_bound(r) else ("failed" if not res else "no"), args))
    failed = [r for r in runs if r.get("result") is None]
    if failed:
        out.append("")
        for r in failed:
            out.append("- %s %s failed: %s" % (TITLE.get(r["server"], r["server"]), r["label"],
                                               r.get("error", "")))
    out.append("")

    os.makedirs(os.path.dirname(os.path.abspath(a.output)), exist_ok=True)
    # The soak section (contrib/bench/soak.sh) and the federation section
    # (report_s2s.py) come from other runs: keep them and what follows.
    try:
        with open(a.output) as f:
            old = f.read()
    except FileNotFoundError:
        old = ""
    soak = min([i for i in (old.find("<!-- soak:"), old.find("<!-- federation:")) if i >= 0],
               default=-1)
    if soak >= 0:
        out.append(old[soak:].rstrip("\n"))
        out.append("")
    with open(a.output, "w") as f:
        f.write("\n".join(out))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("add", help="append one tern-bench run to the results")
    p.add_argument("--results", required=True)
    p.add_argument("--server", required=True, choices=SERVERS + [MACHINE])
    p.add_argument("--label", required=True)
    p.add_argument("--exit", type=int, required=True)
    p.add_argument("--json", required=True, help="file with tern-bench's output")
    p.add_argument("--args", default="")
    p = sub.add_parser("get", help="print one figure of a run")
    p.add_argument("--results", required=True)
    p.add_argument("--server", required=True, choices=SERVERS)
    p.add_argument("--label", required=True)
    p.add_argument("--key", required=True)
    p = sub.add_parser("step", help="how a step of the chat peak search ended")
    p.add_argument("--results", required=True)
    p.add_argument("--server", required=True, choices=SERVERS)
    p.add_argument("--label", required=True)
    p = sub.add_parser("write", help="write the markdown report")
    p.add_argument("--results", required=True)
    p.add_argument("--params", required=True)
    p.add_argument("--output", required=True)
    a = ap.parse_args()
    return {"add": cmd_add, "get": cmd_get, "step": cmd_step, "write": cmd_write}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
