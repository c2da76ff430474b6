#!/bin/bash
# contrib/bench/soak.sh — a long run of Tern under changing load (not CI).
#
# Owns the soak test: builds Tern for speed (build/bench, as compare.sh),
# starts it with the archive on (MAM, every message written to SQLite and
# expired after a minute), finds the chat peak for the run's message mix
# (bodies of 1 B to 200 KB, log-uniform: as many of 1-2 B as of 100-200 KB),
# then runs chat at half of that peak for --minutes: back-to-back runs of
# --run-seconds, each logging every user in again (reconnects), with
# `ternctl reload` every --reload-every seconds.  It samples the server's
# RSS and the database and WAL sizes every 10 s, checks that every run lost
# nothing, reordered nothing and delivered every body at its length, and
# writes the figures into doc/performance.md (the "Soak" section).
#
# Usage: contrib/bench/soak.sh [--minutes 30] [--users 200] [--rate R]
#                              [--run-seconds 50] [--reload-every 60]
#                              [--bodies 1-200000] [--output FILE] [--keep]
#   --rate R  chat messages/s for the soak (default: half the measured peak)
# Exit status 0 when nothing was lost and RSS and WAL stayed bounded.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
build="$top/build/bench"
minutes=30 users=200 rate="" run_s=50 reload_s=60 bodies=1-200000 keep=0
output="$top/doc/performance.md"
while [ $# -gt 0 ]; do
    case $1 in
    --minutes) minutes=$2; shift ;;
    --users) users=$2; shift ;;
    --rate) rate=$2; shift ;;
    --run-seconds) run_s=$2; shift ;;
    --reload-every) reload_s=$2; shift ;;
    --bodies) bodies=$2; shift ;;
    --output) output=$2; shift ;;
    --keep) keep=1 ;;
    *) echo "usage: see the top of $0" >&2; exit 2 ;;
    esac
    shift
done

say() { printf '[soak %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

if [ ! -x "$build/ternd" ] || [ ! -x "$build/tern-bench" ]; then
    say "building Tern for speed in $build"
    (cd "$top" && { [ -x configure ] || autoreconf -fi >/dev/null; })
    mkdir -p "$build"
    (cd "$build" && { [ -f Makefile ] || "$top/configure" CFLAGS="-O2 -g" >/dev/null; } &&
        make -j"$(nproc)" >/dev/null)
fi

WORK=$(mktemp -d /tmp/tern-soak.XXXXXX)
PORT=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=localhost" -addext "subjectAltName=DNS:localhost" \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
cat >"$WORK/tern.yml" <<YML
log_level: warn
log_file: ternd.log
state_dir: "$WORK"
module_path: "$build/modules/.libs"
storage: { driver: sqlite, path: tern.db }
admin_socket: ternctl.sock
tls: { certificate: "$WORK/cert.pem", key: "$WORK/key.pem" }
listeners:
  - { type: c2s, address: "127.0.0.1", port: $PORT }
limits:
  max_stanza_size: 512K
c2s: { require_encryption: true, allow_plain: false }
modules:
  disco: {}
  ping: { keepalive: false }
  roster: {}
  mam: { expire_after: 1m, expire_interval: 10s }
hosts:
  localhost: {}
YML

pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
    jobs -p | xargs -r kill 2>/dev/null || true
    if [ "$keep" = 1 ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

for ((i = 1; i <= users; i++)); do echo "u$i@localhost password"; done |
    "$build/ternctl" -c "$WORK/tern.yml" adduser-batch >"$WORK/provision.log" 2>&1
(cd "$WORK" && exec taskset -c 0 "$build/ternd" -c "$WORK/tern.yml") &
pid=$!
for _ in $(seq 50); do ss -ltn | grep -q ":$PORT " && break; sleep 0.2; done

bench() { # bench RATE SECONDS -> JSON line on stdout, exit status of tern-bench
    taskset -c 1 "$build/tern-bench" --scenario chat --port "$PORT" --users "$users" \
        --rate 200 --msg-rate "$1" --duration "$2" --drain 20 --body-size "$bodies" \
        --server-pid "$pid" --json-only
}
field() { /usr/bin/python3 -c 'import json,sys; print(json.loads(sys.argv[1]).get(sys.argv[2]))' "$1" "$2"; }

# The peak for this mix: steps of x1.5 until delivery falls behind.
peak=0
if [ -z "$rate" ]; then
    r=200
    for _ in $(seq 12); do
        j=$(bench "$r" 10 || true)
        d=$(field "$j" delivered_per_s)
        say "peak search: asked $r/s, delivered $d/s"
        /usr/bin/python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) >= 0.95*float(sys.argv[2]) else 1)' "$d" "$r" || break
        peak=$r
        r=$((r * 3 / 2))
    done
    rate=$((peak / 2))
    [ "$rate" -ge 1 ] || rate=1
fi
say "soak: $minutes min at $rate msgs/s, bodies $bodies B, $users users, reload every ${reload_s}s"

samples="$WORK/samples.csv"
echo "t_s,rss_kib,db_bytes,wal_bytes" >"$samples"
t0=$(date +%s)
end=$((t0 + minutes * 60))
(
    while [ "$(date +%s)" -lt "$end" ]; do
        rss=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status 2>/dev/null || echo 0)
        db=$(stat -c %s "$WORK/tern.db" 2>/dev/null || echo 0)
        wal=$(stat -c %s "$WORK/tern.db-wal" 2>/dev/null || echo 0)
        echo "$(($(date +%s) - t0)),$rss,$db,$wal" >>"$samples"
        sleep 10
    done
) &
(
    n=0
    while sleep "$reload_s" && [ "$(date +%s)" -lt "$end" ]; do
        if "$build/ternctl" -c "$WORK/tern.yml" reload >/dev/null 2>&1; then n=$((n + 1)); else
            echo "reload failed" >>"$WORK/reload.err"; fi
        echo "$n" >"$WORK/reloads"
    done
) &

runs="$WORK/runs.jsonl"
: >"$runs"
while [ "$(date +%s)" -lt "$end" ]; do
    left=$((end - $(date +%s)))
    d=$run_s
    [ "$left" -lt "$d" ] && d=$left
    [ "$d" -ge 5 ] || break
    j=$(bench "$rate" "$d") || say "tern-bench exited $?"
    echo "$j" >>"$runs"
    kill -0 "$pid" 2>/dev/null || { say "ternd died"; break; }
    say "run: sent $(field "$j" sent) delivered $(field "$j" delivered) lost $(field "$j" lost) corrupt $(field "$j" corrupt)"
done
wait_ok=0
kill -0 "$pid" 2>/dev/null && wait_ok=1

/usr/bin/python3 - "$runs" "$samples" "$output" "$rate" "$peak" "$minutes" "$bodies" "$users" \
    "$(cat "$WORK/reloads" 2>/dev/null || echo 0)" "$([ -f "$WORK/reload.err" ] && wc -l <"$WORK/reload.err" || echo 0)" \
    "$wait_ok" "$reload_s" <<'PY'
import json, sys, re
(runs_f, samples_f, out_f, rate, peak, minutes, bodies, users, reloads, reload_err, alive,
 reload_s) = sys.argv[1:]
runs = [json.loads(l) for l in open(runs_f) if l.strip().startswith("{")]
rows = [l.strip().split(",") for l in open(samples_f)][1:]
rows = [tuple(int(x) for x in r) for r in rows if len(r) == 4]
tot = lambda k: sum((r.get(k) or 0) for r in runs)
sent, deliv = tot("sent"), tot("delivered")
lost, corrupt, reord, disc = tot("lost"), tot("corrupt"), tot("reordered"), tot("disconnects")
errors = tot("stanza_errors")
def at(frac):
    i = min(len(rows) - 1, int(frac * len(rows)))
    return rows[i] if rows else (0, 0, 0, 0)
first, mid, last = at(0.2), at(0.5), rows[-1] if rows else (0, 0, 0, 0)
rss_max = max((r[1] for r in rows), default=0)
wal_max = max((r[3] for r in rows), default=0)
db_max = max((r[2] for r in rows), default=0)
growth = (last[1] - first[1]) / first[1] * 100 if first[1] else 0
ok = (alive == "1" and lost == 0 and corrupt == 0 and reord == 0 and disc == 0 and len(runs) > 0
      and int(reload_err) == 0 and wal_max <= 64 * 1024 * 1024 and growth < 25)
md = ["<!-- soak: written by contrib/bench/soak.sh; kept by report.py -->",
      "## Soak: %s min under load with reloads" % minutes, "",
      "`contrib/bench/soak.sh`: chat at %s msgs/s (half of the %s msgs/s peak this mix reached"
      "; 0: rate given), bodies of %s bytes (log-uniform), %s users logging in again every run, "
      "the archive on (expired after 1 min), `ternctl reload` every %s s." %
      (rate, peak, bodies, users, reload_s), "",
      "| figure | value |", "|---|---|",
      "| result | %s |" % ("passed" if ok else "FAILED"),
      "| runs (each a full reconnect) | %d |" % len(runs),
      "| reloads (failed) | %s (%s) |" % (reloads, reload_err),
      "| messages sent / delivered | %d / %d |" % (sent, deliv),
      "| lost / reordered / wrong length / disconnects / stanza errors | %d / %d / %d / %d / %d |" %
      (lost, reord, corrupt, disc, errors),
      "| server RSS at 20 %% / 50 %% / end of the run (KiB) | %d / %d / %d |" %
      (first[1], mid[1], last[1]),
      "| RSS growth from 20 %% to the end | %.1f %% |" % growth,
      "| RSS max (KiB) | %d |" % rss_max,
      "| WAL size at 20 %% / 50 %% / end, max (bytes) | %d / %d / %d, %d |" %
      (first[3], mid[3], last[3], wal_max),
      "| database size at 20 %% / end, max (bytes) | %d / %d, %d |" % (first[2], last[2], db_max),
      "| latency p50 / p99 of the runs (median of runs, ms) | %s / %s |" % (
          sorted(r.get("latency_ms_p50") or 0 for r in runs)[len(runs) // 2] if runs else "n/a",
          sorted(r.get("latency_ms_p99") or 0 for r in runs)[len(runs) // 2] if runs else "n/a"),
      ""]
block = "\n".join(md) + "\n"
try:
    text = open(out_f).read()
except FileNotFoundError:
    text = ""
i = text.find("<!-- soak:")
text = (text[:i] if i >= 0 else text.rstrip("\n") + "\n\n") + block
open(out_f, "w").write(text)
print(block)
sys.exit(0 if ok else 1)
PY
