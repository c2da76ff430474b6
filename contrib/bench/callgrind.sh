#!/bin/bash
# contrib/bench/callgrind.sh — user-space instructions per routed message.
#
# Owns the method of doc/performance-analysis.md as one repeatable run:
# builds Tern for speed (-O2 -g, no sanitizers, in build/bench) with
# tern-bench if needed, makes a certificate and the accounts (ternctl
# adduser-batch), then runs ternd under callgrind twice with the
# configuration of contrib/bench/tern.yml.in: once with USERS users chatting
# at RATE msgs/s for DURATION seconds, once the same at 1 msg/s.  The
# difference of the two, divided by the difference of the messages
# delivered, is what one routed one-to-one message costs in user space
# (logins, start-up and idle costs cancel out).  It prints that figure in
# total, per library or object, and the functions that cost the most.
#
# Usage: contrib/bench/callgrind.sh [--keep] [--top N] [--report DIR]
#   --keep        keep the work folder (config, logs, callgrind outputs)
#   --top N       functions listed (30)
#   --report DIR  print the figures of a folder kept earlier, run nothing
# Environment (defaults in brackets): CG_USERS [200]  CG_RATE [2000]
#   CG_DURATION [5]  CG_LOW_RATE [1]  CG_ITERATIONS [4096]  CG_TRIES [3]
#   CG_SERVER_CPU [0]  CG_TOOL_CPU [1]
# Under callgrind ternd runs some 50 times slower: on a busy machine it
# falls behind, reads and writes several messages per TLS record, and the
# figure comes out too low.  The records per message are printed; when
# fewer than 0.9 are written per message the run is flagged and the exit
# status is 3; the high run is tried up to CG_TRIES times before that.  Takes under a minute on 2 quiet cores.
# Nothing it starts is left running.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
here="$top/contrib/bench"
build="$top/build/bench"
PY=/usr/bin/python3

keep=0 ntop=30 report=""
while [ $# -gt 0 ]; do
    case $1 in
    --keep) keep=1 ;;
    --top)
        ntop=$2
        shift
        ;;
    --report)
        report=$2
        shift
        ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "callgrind.sh: unknown argument '$1' (see --help)" >&2
        exit 2
        ;;
    esac
    shift
done

USERS=${CG_USERS:-200}
RATE=${CG_RATE:-2000}
DURATION=${CG_DURATION:-5}
LOW_RATE=${CG_LOW_RATE:-1}
ITERATIONS=${CG_ITERATIONS:-4096}
TRIES=${CG_TRIES:-3}
SERVER_CPU=${CG_SERVER_CPU:-0}
TOOL_CPU=${CG_TOOL_CPU:-1}
DOMAIN=localhost
PASSWORD=cg-$$-pass

figures() { # figures DIR: the difference of the two runs kept in DIR
    "$PY" - "$1" "$ntop" <<'EOF'
import json, os, re, sys
work, ntop = sys.argv[1], int(sys.argv[2])

def self_costs(path):
    """Self Ir per (object, function) from a callgrind output file."""
    names = {"ob": {}, "fl": {}, "fn": {}}
    kind_of = {"ob": "ob", "cob": "ob", "fl": "fl", "fi": "fl", "fe": "fl",
               "cfi": "fl", "cfl": "fl", "fn": "fn", "cfn": "fn"}
    def name(kind, text):
        m = re.match(r"\((\d+)\)(?: (.*))?$", text)
        if not m:
            return text
        table = names[kind_of[kind]]
        if m.group(2) is not None:
            table[m.group(1)] = m.group(2)
        return table.get(m.group(1), "?")
    costs, calls, ob, fn, after_call = {}, {}, "?", "?", False
    ncalls, cfn = {}, "?"
    with open(path) as f:
        for line in f:
            c = line[0]
            if c.isdigit() or c in "+-*":
                parts = line.split()
                if after_call:
                    after_call = False
                    if len(parts) > 1:
                        k = (ob, fn)
                        calls[k] = calls.get(k, 0) + int(parts[1])
                    continue
                if len(parts) > 1:
                    k = (ob, fn)
                    costs[k] = costs.get(k, 0) + int(parts[1])
                continue
            key, _, val = line.rstrip("\n").partition("=")
            if key == "ob":
                ob = name("ob", val)
            elif key == "fn":
                fn = name("fn", val)
            elif key == "cfn":
                cfn = name(key, val)
            elif key in ("cob", "cfi", "cfl", "fl", "fi", "fe"):
                name(key, val)
            elif key == "calls":
                after_call = True
                ncalls[cfn] = ncalls.get(cfn, 0) + int(val.split()[0])
    return costs, calls, ncalls

def group(obj):
    b = os.path.basename(obj)
    for prefix, g in (("ternd", "ternd"), ("mod_", "modules"), ("libexpat", "libexpat"),
                      ("libcrypto", "libcrypto"), ("libssl", "libssl"),
                      ("libevent", "libevent"), ("libc.so", "libc"), ("libc-", "libc"),
                      ("libidn2", "libidn2/libunistring"),
                      ("libunistring", "libidn2/libunistring"),
                      ("libsqlite3", "sqlite"), ("ld-linux", "ld.so")):
        if b.startswith(prefix):
            return g
    return "other (" + b + ")"

res = {}
for label in ("high", "low"):
    with open(os.path.join(work, label + ".json")) as f:
        res[label] = json.load(f)
msgs = res["high"]["delivered"] - res["low"]["delivered"]
if msgs <= 0:
    sys.exit("no messages routed")
hi, hi_calls, hi_n = self_costs(os.path.join(work, "high.cg"))
lo, lo_calls, lo_n = self_costs(os.path.join(work, "low.cg"))
diff = {k: hi.get(k, 0) - lo.get(k, 0) for k in set(hi) | set(lo)}
# Inclusive: self plus what the function's calls cost (a recursive
# function counts its inner calls again).
incl = {k: diff.get(k, 0) + hi_calls.get(k, 0) - lo_calls.get(k, 0)
        for k in set(diff) | set(hi_calls) | set(lo_calls)}
total = sum(diff.values())
h = res["high"]
print(f"messages routed: {msgs} (high run: sent {h['sent']}, delivered {h['delivered']}, "
      f"lost {h['lost']}, p50 {h['latency_ms_p50']} ms; low run: {res['low']['delivered']})")
print(f"user-space instructions per routed message: {total / msgs:,.0f}".replace(",", " "))
per = {f: (hi_n.get(f, 0) - lo_n.get(f, 0)) / msgs for f in ("SSL_read", "SSL_write")}
print(f"TLS records per message: {per['SSL_read']:.2f} read, {per['SSL_write']:.2f} written")
batched = per["SSL_write"] < 0.9
if batched:
    print("WARNING: the server fell behind under callgrind (a busy machine?): several "
          "messages went out in one record and the figure is too low; run again")
print()
groups = {}
for (ob, fn), v in diff.items():
    g = group(ob)
    groups[g] = groups.get(g, 0) + v
print(f"{'per message':>12} {'share':>6}  library or object")
for g, v in sorted(groups.items(), key=lambda x: -x[1]):
    if abs(v) / msgs >= 1:
        print(f"{v / msgs:12.0f} {100 * v / total:5.1f}%  {g}")
print()
print(f"{'per message':>12} {'share':>6}  function (object)")
for (ob, fn), v in sorted(diff.items(), key=lambda x: -x[1])[:ntop]:
    print(f"{v / msgs:12.0f} {100 * v / total:5.1f}%  {fn} ({os.path.basename(ob)})")
print()
print(f"{'per message':>12} {'share':>6}  function of ternd or a module, with what it calls")
tern = [(k, v) for k, v in incl.items() if group(k[0]) in ("ternd", "modules")]
for (ob, fn), v in sorted(tern, key=lambda x: -x[1])[:ntop]:
    print(f"{v / msgs:12.0f} {100 * v / total:5.1f}%  {fn} ({os.path.basename(ob)})")
sys.exit(3 if batched else 0)
EOF
}
if [ -n "$report" ]; then
    figures "$report"
    exit 0
fi

say() { printf '[callgrind] %s\n' "$*" >&2; }
die() {
    say "ERROR: $*"
    exit 1
}
command -v valgrind >/dev/null || die "valgrind is not installed (apt-get install valgrind)"
if ! [[ $USERS =~ ^[0-9]+$ ]] || [ "$USERS" -lt 2 ]; then
    die "CG_USERS must be a whole number ≥ 2"
fi
for n in RATE DURATION LOW_RATE ITERATIONS TRIES; do
    [[ ${!n} =~ ^[0-9]+$ ]] || die "CG_$n must be a whole number, not '${!n}'"
done

# ---- Tern and tern-bench, built as compare.sh builds them ---------------------
mkdir -p "$build"
(
    cd "$top"
    [ -x configure ] || autoreconf -fi >/dev/null 2>&1
    cd "$build"
    if [ ! -f Makefile ] || [ "$(./config.status --config)" != "'CFLAGS=-O2 -g'" ]; then
        say "configuring $build (-O2 -g, no sanitizers)"
        "$top/configure" CFLAGS="-O2 -g" >/dev/null
        make clean >/dev/null
    fi
    say "building in $build"
    make -j2 >/dev/null
)

# ---- work folder, certificate, config, accounts -----------------------------------
WORK=$(mktemp -d /tmp/tern-callgrind.XXXXXX)
server_pid=""
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$server_pid" ]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    if [ "$keep" = 1 ] || [ $rc != 0 ]; then
        say "work folder kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj "/CN=$DOMAIN" -addext "subjectAltName=DNS:$DOMAIN" \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
sed -e "s|@STATE@|$WORK|g" -e "s|@PORT@|$port|g" -e "s|@DOMAIN@|$DOMAIN|g" \
    -e "s|@ITERATIONS@|$ITERATIONS|g" -e "s|@CERT@|$WORK/cert.pem|g" \
    -e "s|@KEY@|$WORK/key.pem|g" -e "s|@MODULE_PATH@|$build/modules/.libs|g" \
    "$here/tern.yml.in" >"$WORK/tern.yml"
say "provisioning $USERS accounts"
for ((i = 1; i <= USERS; i++)); do echo "u$i@$DOMAIN $PASSWORD"; done |
    "$build/ternctl" -c "$WORK/tern.yml" adduser-batch >"$WORK/provision.log" 2>&1 ||
    die "adduser-batch failed: $(cat "$WORK/provision.log")"

# ---- one run: ternd under callgrind, tern-bench chat at a rate ------------------
run() { # run LABEL RATE
    local label=$1 rate=$2 i
    say "run '$label': $USERS users, $rate msgs/s for $DURATION s, ternd under callgrind"
    (cd "$WORK" && exec taskset -c "$SERVER_CPU" valgrind --tool=callgrind \
        --callgrind-out-file="$WORK/$label.cg" "$build/ternd" -c "$WORK/tern.yml") \
        >"$WORK/$label.ternd.log" 2>&1 &
    server_pid=$!
    for ((i = 0; i < 600; i++)); do
        kill -0 "$server_pid" 2>/dev/null || die "ternd exited at start: $(tail -5 "$WORK/$label.ternd.log")"
        ss -Hltn "sport = :$port" | grep -q LISTEN && break
        sleep 0.25
    done
    local rc=0
    taskset -c "$TOOL_CPU" "$build/tern-bench" --server 127.0.0.1 --port "$port" \
        --domain "$DOMAIN" --user-format 'u%d' --password "$PASSWORD" \
        --mechanism SCRAM-SHA-1 --users "$USERS" --rate 50 --login-timeout 300 \
        --scenario chat --msg-rate "$rate" --duration "$DURATION" --drain 30 \
        --server-pid "$server_pid" --tool-bound-pct 101 --json-only \
        >"$WORK/$label.json" 2>"$WORK/$label.err" || rc=$?
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=""
    [ "$rc" = 0 ] || die "tern-bench failed ($rc): $(tail -5 "$WORK/$label.err")"
    [ -s "$WORK/$label.cg" ] || die "no callgrind output for '$label'"
}
run low "$LOW_RATE"

for ((try = 1; ; try++)); do
    run high "$RATE"
    rc=0
    figures "$WORK" || rc=$?
    [ "$rc" = 3 ] && [ "$try" -lt "$TRIES" ] || exit "$rc"
    say "the server fell behind: the high run again ($((try + 1)) of $TRIES)"
done
