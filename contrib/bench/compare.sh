#!/bin/bash
# contrib/bench/compare.sh — Tern against Prosody and ejabberd, in one run.
#
# Owns the comparison: installs Prosody and ejabberd from Debian (once;
# their system services are disabled and never left running), builds Tern
# for speed (-O2, no sanitizers, in build/bench) with tern-bench, makes one
# self-signed certificate, configures the three servers alike
# (contrib/bench/*.in: STARTTLS required, SCRAM with the same iteration
# count, no in-band registration, logging at warn, roster/presence, disco
# and ping only; SQLite for Tern, files for Prosody, Mnesia for ejabberd),
# creates the same accounts on each (fast paths: `ternctl adduser-batch`,
# provision.py), then for each server in turn: starts it in the foreground
# pinned to one core, checks it with a real client (check_servers.py),
# runs the scenarios with tern-bench pinned to the other core, and stops
# it, leaving no process behind.  report.py turns the JSON lines into
# doc/performance.md.
#
# The headline is the server's CPU time per delivered message in chat at
# the same moderate rates for all three (BENCH_CHAT_RATES, one message per
# write, paced by tern-bench): CPU of the server process and its children
# in the measured window / messages delivered in it.  A server that cannot
# keep up with a rate is shown with the rate it reached.  The chat runs
# start on a freshly started server.
#
# The federation part (compare-s2s.sh) runs each server twice, a.test and
# b.test on 127.0.0.2 and 127.0.0.3, federating through one dnsmasq and
# one test CA: CPU per message of both together at BENCH_S2S_RATES, the
# latency, the first message of a new link and the memory of a link.
#
# Usage: contrib/bench/compare.sh [--check-only] [--quick] [--keep]
#                                 [--no-install] [--output FILE]
#                                 [--no-s2s | --only s2s]
#   --check-only  set up, provision and check each server, no load
#   --quick       small numbers everywhere (a smoke test of the script)
#   --keep        keep the work folder (configs, logs, data, results)
#   --no-install  fail instead of installing Prosody and ejabberd
#   --output F    where the markdown goes (doc/performance.md)
#   --no-s2s      skip the federation part
#   --only s2s    run the federation part alone (its section of the
#                 report is replaced, the rest of the file is kept)
# Parameters come from the environment (defaults in brackets):
#   BENCH_SERVERS ["tern prosody ejabberd"]  BENCH_USERS [15000]
#   BENCH_SCENARIOS ["connect chat presence"]
#   BENCH_RATE [300] logins/s  BENCH_HOLD [20] s  BENCH_PROCESSES [1]
#   BENCH_CHAT_USERS [1000]
#   BENCH_CHAT_RATES ["2000 5000 10000"] msgs/s of the fixed-rate chat runs,
#     BENCH_CHAT_RATE_DURATION [20] s each (the headline: CPU per message)
#   BENCH_CHAT_START_RATE [2000] msgs/s of the first step of the peak search,
#     each next step BENCH_CHAT_STEP [1.5] times more, at most
#     BENCH_CHAT_STEPS [14] steps of BENCH_CHAT_STEP_DURATION [10] s each
#   BENCH_CHAT_RATE [none] msgs/s of one more chat run of BENCH_CHAT_DURATION
#     [20] s, e.g. near the peak
#   BENCH_PRES_USERS [505] more accounts, u(USERS+1)..., for presence only
#   BENCH_ROSTER [100]  BENCH_PRES_RATE [300] changes/s
#   BENCH_ROSTER_PRELOAD ["prosody ejabberd"] servers whose presence rosters
#     are written into their storage before the run (else built over XMPP)
#   BENCH_PRES_DURATION [20] s  BENCH_PRES_SETUP_TIMEOUT [180] s
#   BENCH_ITERATIONS [4096]
#   BENCH_S2S_SERVERS [BENCH_SERVERS]  BENCH_S2S_USERS [500] per server
#   BENCH_S2S_RATES ["1000 2000"] msgs/s  BENCH_S2S_DURATION [20] s
#   BENCH_S2S_LINKS [50] other domains of server B asked (memory per link)
#   BENCH_SERVER_CPU [0]  BENCH_TOOL_CPU [1]  TERN_BENCH [build/bench/tern-bench]
# Must run as root (installs, taskset, runs ejabberd as its own user).
# Whole run: under 20 minutes on 2 cores with the defaults.
set -euo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
here="$top/contrib/bench"
PY=/usr/bin/python3
build="$top/build/bench"

check_only=0 keep=0 install=1 output="$top/doc/performance.md" s2s=1 only_s2s=0
while [ $# -gt 0 ]; do
    case $1 in
    --check-only) check_only=1 ;;
    --quick)
        : "${BENCH_USERS:=300}" "${BENCH_RATE:=200}" "${BENCH_HOLD:=3}"
        : "${BENCH_CHAT_USERS:=100}" "${BENCH_CHAT_DURATION:=5}"
        : "${BENCH_CHAT_RATES:=200 500}" "${BENCH_CHAT_RATE_DURATION:=3}"
        : "${BENCH_CHAT_START_RATE:=500}" "${BENCH_CHAT_STEP:=2}" "${BENCH_CHAT_STEPS:=3}"
        : "${BENCH_CHAT_STEP_DURATION:=3}"
        : "${BENCH_PRES_USERS:=66}" "${BENCH_ROSTER:=10}" "${BENCH_PRES_DURATION:=5}"
        : "${BENCH_PRES_RATE:=20}"
        : "${BENCH_S2S_USERS:=20}" "${BENCH_S2S_RATES:=100 200}" "${BENCH_S2S_DURATION:=3}"
        : "${BENCH_S2S_LINKS:=5}"
        ;;
    --no-s2s) s2s=0 ;;
    --only)
        [ "${2:-}" = s2s ] || {
            echo "compare.sh: --only takes 's2s'" >&2
            exit 2
        }
        only_s2s=1
        shift
        ;;
    --keep) keep=1 ;;
    --no-install) install=0 ;;
    --output)
        output=$2
        shift
        ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "compare.sh: unknown argument '$1' (see --help)" >&2
        exit 2
        ;;
    esac
    shift
done

SERVERS=${BENCH_SERVERS:-"tern prosody ejabberd"}
SCENARIOS=${BENCH_SCENARIOS:-"connect chat presence"}
DOMAIN=${BENCH_DOMAIN:-localhost}
PASSWORD=${BENCH_PASSWORD:-bench-$$-pass}
ITERATIONS=${BENCH_ITERATIONS:-4096}
USERS=${BENCH_USERS:-15000}
# 300 logins/s keep one tern-bench core near 70% (SCRAM's PBKDF2 is
# client-side work); 400/s took it to 89%, next to "tool bound".
RATE=${BENCH_RATE:-300}
HOLD=${BENCH_HOLD:-20}
# One load process: all of them share TOOL_CPU anyway, and tern-bench
# judges "tool bound" by its busiest process.
PROCESSES=${BENCH_PROCESSES:-1}
CHAT_USERS=${BENCH_CHAT_USERS:-1000}
CHAT_DURATION=${BENCH_CHAT_DURATION:-20}
CHAT_RATES=${BENCH_CHAT_RATES-"2000 5000 10000"}
CHAT_RATE_DURATION=${BENCH_CHAT_RATE_DURATION:-20}
CHAT_START_RATE=${BENCH_CHAT_START_RATE:-2000}
CHAT_STEP=${BENCH_CHAT_STEP:-1.5}
CHAT_STEPS=${BENCH_CHAT_STEPS:-14}
CHAT_STEP_DURATION=${BENCH_CHAT_STEP_DURATION:-10}
CHAT_RATE=${BENCH_CHAT_RATE:-}
PRES_USERS=${BENCH_PRES_USERS:-505}
ROSTER=${BENCH_ROSTER:-100}
PRES_RATE=${BENCH_PRES_RATE:-300}
PRES_DURATION=${BENCH_PRES_DURATION:-20}
PRES_SETUP_TIMEOUT=${BENCH_PRES_SETUP_TIMEOUT:-180}
ROSTER_PRELOAD=${BENCH_ROSTER_PRELOAD-"prosody ejabberd"}
SERVER_CPU=${BENCH_SERVER_CPU:-0}
TOOL_CPU=${BENCH_TOOL_CPU:-1}
SOURCE_IPS=${BENCH_SOURCE_IPS:-127.0.0.1-127.0.0.250}
TERN_BENCH=${TERN_BENCH:-$build/tern-bench}

t_start=$(date +%s)
say() { printf '[%4ds] %s\n' $(($(date +%s) - t_start)) "$*" >&2; }
die() {
    say "ERROR: $*"
    exit 1
}

[ "$(id -u)" = 0 ] || die "run as root (installs packages, pins and runs the servers)"
for s in $SERVERS; do
    case $s in tern | prosody | ejabberd) ;; *) die "unknown server '$s' in BENCH_SERVERS" ;; esac
done
for s in $SCENARIOS; do
    case $s in connect | chat | presence) ;; *) die "unknown scenario '$s' in BENCH_SCENARIOS" ;; esac
done
wants() { [[ " $SCENARIOS " == *" $1 "* ]]; }
for n in USERS PROCESSES CHAT_USERS CHAT_STEPS PRES_USERS ROSTER ITERATIONS SERVER_CPU TOOL_CPU; do
    [[ ${!n} =~ ^[0-9]+$ ]] || die "BENCH_$n must be a whole number, not '${!n}'"
done
for n in RATE HOLD CHAT_DURATION CHAT_RATE_DURATION CHAT_START_RATE CHAT_STEP \
    CHAT_STEP_DURATION PRES_RATE PRES_DURATION PRES_SETUP_TIMEOUT; do
    [[ ${!n} =~ ^[0-9]+([.][0-9]+)?$ ]] || die "BENCH_$n must be a number, not '${!n}'"
done
[ -z "$CHAT_RATE" ] || [[ $CHAT_RATE =~ ^[0-9]+([.][0-9]+)?$ ]] ||
    die "BENCH_CHAT_RATE must be a number, not '$CHAT_RATE'"
for r in $CHAT_RATES; do
    [[ $r =~ ^[1-9][0-9]*$ ]] || die "BENCH_CHAT_RATES must be whole numbers above 0, not '$r'"
done
[ "$USERS" -ge 2 ] || die "BENCH_USERS must be at least 2"
if [ "$check_only" = 0 ] && wants chat; then
    [ "$CHAT_USERS" -le "$USERS" ] || die "BENCH_CHAT_USERS ($CHAT_USERS) exceeds BENCH_USERS ($USERS)"
fi
# The presence users are accounts of their own, after the USERS others:
# their rosters then weigh on no other scenario.
PRES_FIRST=$((USERS + 1))
ACCOUNTS=$USERS
if [ "$check_only" = 0 ] && wants presence; then
    ACCOUNTS=$((USERS + PRES_USERS))
fi
preload() { wants presence && [ "$check_only" = 0 ] && [[ " $ROSTER_PRELOAD " == *" $1 "* ]]; }
[ "$(nproc)" -ge 2 ] || die "needs 2 cores: one for the server, one for the load"
[ "$check_only" = 0 ] || s2s=0
[ "$s2s" = 1 ] || [ "$only_s2s" = 0 ] || die "--only s2s: not with --no-s2s or --check-only"
# shellcheck source=contrib/bench/compare-s2s.sh
[ "$s2s" = 0 ] || . "$here/compare-s2s.sh"

# ---- the open-files limit ---------------------------------------------------
# Every server and the load tool inherit the hard limit as their soft one.
hard=$(ulimit -Hn)
ulimit -n "$hard"
if [ "$hard" != unlimited ] && [ "$hard" -lt $((USERS + 1000)) ]; then
    die "the open-files hard limit ($hard) is too low for $USERS sessions"
fi

# ---- Prosody and ejabberd from Debian ---------------------------------------
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "ok installed"; }
epmd_pids() { pgrep -x epmd || true; }
install_peers() {
    local want="prosody ejabberd python3-slixmpp openssl util-linux procps iproute2 dnsmasq"
    want="$want lua-unbound python3-cryptography"
    local missing="" p
    for p in $want; do installed "$p" || missing="$missing $p"; done
    [ -n "$missing" ] || return 0
    [ "$install" = 1 ] || die "missing packages:$missing (and --no-install given)"
    say "installing:$missing"
    local before_epmd policy_made=0
    before_epmd=$(epmd_pids)
    # Keep the packages from starting their services while they install.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        policy_made=1
    fi
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq $missing >/dev/null
    [ "$policy_made" = 0 ] || rm -f /usr/sbin/policy-rc.d
    # The run starts its own instances; the system ones stay off.
    if command -v systemctl >/dev/null; then
        systemctl disable --now prosody ejabberd epmd.service epmd.socket >/dev/null 2>&1 || true
    fi
    # An epmd the installation left (ejabberd's scripts start one) goes too.
    for p in $(epmd_pids); do
        case " $before_epmd " in *" $p "*) continue ;; esac
        kill "$p" 2>/dev/null || true
    done
}
install_peers

# ---- Tern and tern-bench -----------------------------------------------------
say "building Tern (-O2, no sanitizers) in $build"
mkdir -p "$build"
(
    cd "$top"
    sh contrib/deps.sh >/dev/null
    [ -x configure ] || autoreconf -fi >/dev/null 2>&1
    cd "$build"
    # A folder configured otherwise (sanitizers...) is configured again.
    if [ ! -f Makefile ] || [ "$(./config.status --config)" != "'CFLAGS=-O2 -g'" ]; then
        "$top/configure" CFLAGS="-O2 -g" >/dev/null
        make clean >/dev/null
    fi
    make -j"$(nproc)" >/dev/null
)
if [ "$check_only" = 0 ] && [ ! -x "$TERN_BENCH" ]; then
    die "no tern-bench at $TERN_BENCH (set TERN_BENCH, or use --check-only)"
fi

# ---- the work folder -----------------------------------------------------------
WORK=$(mktemp -d /tmp/tern-compare.XXXXXX)
chmod 755 "$WORK" # ejabberd runs as its own user and must reach its folder
results="$WORK/results.jsonl"
: >"$results"
server_pid="" launcher_pid="" current="" busy_pids=""
epmd_before=$(epmd_pids)

cleanup() {
    local rc=$? p
    trap - EXIT INT TERM
    for p in $busy_pids; do # provisioning cut short: its subshells and their children
        pkill -TERM -P "$p" 2>/dev/null || true
        kill -TERM "$p" 2>/dev/null || true
    done
    if [ -n "$server_pid" ] || [ -n "$launcher_pid" ]; then
        say "stopping $current after an interruption"
        stop_server || true
    fi
    [ "$s2s" = 0 ] || s2s_cleanup
    if [ "$keep" = 1 ] || [ $rc != 0 ]; then
        say "work folder kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

say "work folder $WORK"
# One certificate for all three: ECDSA P-256, as most public XMPP services use.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -subj "/CN=$DOMAIN" -addext "subjectAltName=DNS:$DOMAIN" \
    -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
chmod 644 "$WORK/cert.pem" "$WORK/key.pem"

render() { # render TEMPLATE OUTPUT STATE PORT
    sed -e "s|@STATE@|$3|g" -e "s|@PORT@|$4|g" -e "s|@DOMAIN@|$DOMAIN|g" \
        -e "s|@ITERATIONS@|$ITERATIONS|g" -e "s|@CERT@|$WORK/cert.pem|g" \
        -e "s|@KEY@|$WORK/key.pem|g" -e "s|@MODULE_PATH@|$build/modules/.libs|g" \
        "$here/$1" >"$2"
}

declare -A PORT
for s in $SERVERS; do PORT[$s]=$(free_port); done
EJ_DIST_PORT=$(free_port)

# Tern
mkdir -p "$WORK/tern"
render tern.yml.in "$WORK/tern/tern.yml" "$WORK/tern" "${PORT[tern]:-5222}"
# Prosody
mkdir -p "$WORK/prosody/data" "$WORK/prosody/certs"
render prosody.cfg.lua.in "$WORK/prosody/prosody.cfg.lua" "$WORK/prosody" "${PORT[prosody]:-5222}"
# ejabberd: its own config, ejabberdctl settings, spool and logs; the
# distribution port is fixed, so no epmd is needed or started.
ej="$WORK/ejabberd"
mkdir -p "$ej/spool" "$ej/logs"
render ejabberd.yml.in "$ej/ejabberd.yml" "$ej" "${PORT[ejabberd]:-5222}"
cat "$WORK/cert.pem" "$WORK/key.pem" >"$ej/server.pem"
: >"$ej/inetrc"
cat >"$ej/ejabberdctl.cfg" <<EOF
ERLANG_NODE=ejabberd@localhost
ERL_DIST_PORT=$EJ_DIST_PORT
INET_DIST_INTERFACE=127.0.0.1
ERL_MAX_PORTS=65536
ERL_PROCESSES=1000000
ERL_OPTIONS="+S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none -env ERL_CRASH_DUMP_BYTES 0"
EJABBERD_PID_PATH=$ej/ejabberd.pid
EJABBERD_BYPASS_WARNINGS=true
EOF
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$ej/.erlang.cookie"
chmod 400 "$ej/.erlang.cookie"
chown -R ejabberd:ejabberd "$ej"

# ---- accounts ------------------------------------------------------------------
# Tern through its admin tool (one process, checked first, then written
# in small transactions), the peers' SCRAM-SHA-1 credentials derived once
# by provision.py: both at the same time, one per core.
declare -A PROVISION_S
provision() {
    local t0 t1 pids=()
    t0=$(date +%s.%N)
    if [[ " $SERVERS " == *" tern "* ]]; then
        (
            for ((i = 1; i <= ACCOUNTS; i++)); do echo "u$i@$DOMAIN $PASSWORD"; done |
                taskset -c "$SERVER_CPU" "$build/ternctl" -c "$WORK/tern/tern.yml" adduser-batch \
                    >"$WORK/tern/provision.log" 2>&1
            date +%s.%N >"$WORK/tern/provision.done"
        ) &
        pids+=($!)
    fi
    if [[ " $SERVERS " == *" prosody "* ]] || [[ " $SERVERS " == *" ejabberd "* ]]; then
        local rosters=()
        if preload prosody || preload ejabberd; then
            rosters=(--roster-first "$PRES_FIRST" --roster-users "$PRES_USERS"
                --roster-k "$ROSTER")
            preload prosody && rosters+=(--prosody-rosters)
            preload ejabberd && rosters+=(--ejabberd-roster "$WORK/ejabberd-rosters.eterm")
        fi
        (
            taskset -c "$TOOL_CPU" "$PY" "$here/provision.py" --domain "$DOMAIN" \
                --users "$ACCOUNTS" --user-format 'u%d' --password "$PASSWORD" \
                --iterations "$ITERATIONS" --jobs 1 \
                --prosody-data "$WORK/prosody/data" --ejabberd-terms "$WORK/ejabberd-users.eterm" \
                "${rosters[@]}" >"$WORK/provision.log" 2>&1
            date +%s.%N >"$WORK/provision.done"
            chmod 644 "$WORK"/ejabberd-*.eterm
        ) &
        pids+=($!)
    fi
    busy_pids="${pids[*]}"
    local p ok=1
    for p in "${pids[@]}"; do wait "$p" || ok=0; done
    busy_pids=""
    [ "$ok" = 1 ] || {
        cat "$WORK/tern/provision.log" "$WORK/provision.log" 2>/dev/null >&2
        die "provisioning failed"
    }
    if [ -f "$WORK/tern/provision.done" ]; then
        t1=$(cat "$WORK/tern/provision.done")
        PROVISION_S[tern]=$("$PY" -c "print(round($t1 - $t0, 1))")
        say "tern: $(cat "$WORK/tern/provision.log") in ${PROVISION_S[tern]} s"
    fi
    if [ -f "$WORK/provision.done" ]; then
        t1=$(cat "$WORK/provision.done")
        PROVISION_S[prosody]=$("$PY" -c "print(round($t1 - $t0, 1))")
        say "prosody/ejabberd credentials: ${PROVISION_S[prosody]} s ($(cat "$WORK/provision.log"))"
    fi
}
if [ "$only_s2s" = 0 ]; then
    say "creating $ACCOUNTS accounts per server (SCRAM, $ITERATIONS iterations)"
    provision
fi

# ejabberd's accounts go in through its own API, inside the running node:
# ejabberd_auth:try_register/3 with the ready #scram{} record (and the
# presence rosters through mod_roster:set_roster/1), from a hidden Erlang
# node that reaches ejabberd over its fixed distribution port.
ejabberd_eval() { # ejabberd_eval ERLANG-EXPRESSIONS: run on a control node
    (cd "$ej" && HOME="$ej" taskset -c "$TOOL_CPU" erl -sname "benchctl$$@localhost" -hidden \
        -noshell -noinput -start_epmd false -erl_epmd_port "$EJ_DIST_PORT" -dist_listen false \
        -eval "Node = ejabberd@localhost, $1" 2>&1)
}
ejabberd_load_users() {
    local t0 out
    t0=$(date +%s.%N)
    out=$(ejabberd_eval '
        {ok, Terms} = file:consult("'"$WORK"'/ejabberd-users.eterm"),
        Rs = [rpc:call(Node, ejabberd_auth, try_register, [U, H, P]) || {U, H, P} <- Terms],
        case [R || R <- Rs, R =/= ok] of
            [] -> io:format("~b accounts created", [length(Rs)]);
            Bad -> io:format("~b of ~b failed, first: ~p~n", [length(Bad), length(Rs), hd(Bad)]),
                   halt(1)
        end,
        case file:consult("'"$WORK"'/ejabberd-rosters.eterm") of
            {ok, Lists} ->
                Ns = [case rpc:call(Node, lists, foreach, [fun mod_roster:set_roster/1, L]) of
                          ok -> length(L);
                          Err -> io:format("~nroster failed: ~p~n", [Err]), halt(1)
                      end || L <- Lists],
                io:format(", ~b roster items", [lists:sum(Ns)]);
            {error, enoent} -> ok
        end,
        halt(0).') || die "ejabberd: loading the accounts failed: $out"
    local el
    el=$("$PY" -c "import time; print(round(time.time() - $t0, 1))")
    PROVISION_S[ejabberd]=$("$PY" -c "print(round(${PROVISION_S[prosody]:-0} + $el, 1))")
    say "ejabberd: $out in $el s (plus the shared derivation)"
}

# ---- starting and stopping a server -------------------------------------------
# The server runs as a child of this shell (so it is reaped), pinned to
# SERVER_CPU.  server_pid is the process that serves (for /proc figures).
start_server() { # start_server NAME
    current=$1
    local port=${PORT[$1]} log="$WORK/$1/stdout.log"
    case $1 in
    tern)
        (cd "$WORK/tern" && exec taskset -c "$SERVER_CPU" "$build/ternd" -c "$WORK/tern/tern.yml") \
            >"$log" 2>&1 &
        launcher_pid=$!
        server_pid=$launcher_pid
        ;;
    prosody)
        (cd "$WORK/prosody" && exec taskset -c "$SERVER_CPU" prosody \
            --config "$WORK/prosody/prosody.cfg.lua" -F) >"$log" 2>&1 &
        launcher_pid=$!
        server_pid=$launcher_pid
        ;;
    ejabberd)
        rm -f "$ej/ejabberd.pid"
        # setpriv, not runuser/su: their PAM session would reset the limits.
        (cd "$ej" && exec taskset -c "$SERVER_CPU" setpriv --reuid=ejabberd --regid=ejabberd \
            --init-groups env HOME="$ej" USER=ejabberd LOGNAME=ejabberd \
            /usr/sbin/ejabberdctl --config-dir "$ej" --config "$ej/ejabberd.yml" \
            --ctl-config "$ej/ejabberdctl.cfg" --logs "$ej/logs" --spool "$ej/spool" \
            foreground) >"$log" 2>&1 &
        launcher_pid=$!
        server_pid=""
        ;;
    esac
    local i
    for ((i = 0; i < 240; i++)); do
        if ! kill -0 "$launcher_pid" 2>/dev/null; then
            cat "$log" >&2
            launcher_pid="" server_pid=""
            die "$1 exited at start (log above)"
        fi
        if [ "$1" = ejabberd ] && [ -z "$server_pid" ] && [ -s "$ej/ejabberd.pid" ]; then
            server_pid=$(cat "$ej/ejabberd.pid")
        fi
        if [ -n "$server_pid" ] && ss -Hltn "sport = :$port" | grep -q LISTEN; then
            local files cpus
            files=$(awk '/^Max open files/ {print $4}' "/proc/$server_pid/limits")
            cpus=$(awk '/^Cpus_allowed_list/ {print $2}' "/proc/$server_pid/status")
            say "$1 listening on 127.0.0.1:$port (pid $server_pid, CPUs $cpus, open files $files)"
            [ "$cpus" = "$SERVER_CPU" ] || die "$1 is not pinned to CPU $SERVER_CPU"
            [ "$files" = unlimited ] || [ "$files" -ge $((USERS + 100)) ] ||
                die "$1 may open only $files files, too few for $USERS sessions"
            return 0
        fi
        sleep 0.25
    done
    die "$1 did not start listening on port $port within 60 s"
}

stop_server() {
    local name=$current i
    if [ -n "$server_pid" ]; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for ((i = 0; i < 120; i++)); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.25
        done
        if kill -0 "$server_pid" 2>/dev/null; then
            say "$name: still running 30 s after SIGTERM: killing pid $server_pid"
            kill -KILL "$server_pid" 2>/dev/null || true
        fi
    fi
    if [ -n "$launcher_pid" ]; then
        wait "$launcher_pid" 2>/dev/null || true
    fi
    server_pid="" launcher_pid=""
    # Nothing of this run may stay behind: no process naming the work
    # folder, no epmd that was not there before.
    local left p
    left=$(pgrep -f "$WORK" || true)
    for p in $(epmd_pids); do
        case " $epmd_before " in *" $p "*) ;; *) left="$left $p" ;; esac
    done
    left=$(xargs <<<"$left")
    if [ -n "$left" ]; then
        say "$name: processes left behind: $(ps -o pid=,user=,args= -p "${left// /,}" | tr '\n' ';')"
        # shellcheck disable=SC2086
        kill -KILL $left 2>/dev/null || true
        return 1
    fi
    say "$name stopped, no process left"
}

# ---- the load ---------------------------------------------------------------------
# bench NAME LABEL ARGS...: one tern-bench run pinned to TOOL_CPU; its JSON
# line goes into the results with the server, the label and the exit
# status (3: tool bound).
bench() {
    local name=$1 label=$2 rc=0
    shift 2
    say "$name: $label ($*)"
    taskset -c "$TOOL_CPU" "$TERN_BENCH" --server 127.0.0.1 --port "${PORT[$name]}" \
        --domain "$DOMAIN" --user-format 'u%d' --password "$PASSWORD" \
        --mechanism SCRAM-SHA-1 --processes "$PROCESSES" --source-ips "$SOURCE_IPS" \
        --server-pid "$server_pid" --json-only "$@" \
        >"$WORK/$name/$label.json" 2>"$WORK/$name/$label.err" || rc=$?
    "$PY" "$here/report.py" add --results "$results" --server "$name" --label "$label" \
        --exit "$rc" --json "$WORK/$name/$label.json" --args "$*" >&2
    return 0
}

run_scenarios() { # run_scenarios NAME
    local name=$1
    wants connect && run_connect "$name" && wait_idle
    if wants chat; then
        # What the logins left (caches, a heap to collect) must not weigh
        # on the chat figures: the chat runs get a fresh server.
        if wants connect; then
            stop_server || true
            start_server "$name"
        fi
        run_chat "$name"
    fi
    wants presence && run_presence "$name"
    return 0
}

run_connect() {
    local name=$1
    # A server slower than RATE builds a backlog: logins may wait long.
    bench "$name" connect --scenario connect --users "$USERS" --rate "$RATE" --hold "$HOLD" \
        --login-timeout 300
    if "$PY" "$here/report.py" get --results "$results" --server "$name" --label connect \
        --key tool_bound | grep -qx true; then
        # Again on a fresh server: the RSS before the retry must be an empty server's.
        stop_server || true
        start_server "$name"
        bench "$name" connect-retry --scenario connect --users "$USERS" \
            --rate "$("$PY" -c "print($RATE / 2)")" --hold "$HOLD" --login-timeout 300
    fi
}

# Wait until the server is quiet (below 5% of a core over half a second,
# at most 30 s): what one run left queued must not weigh on the next.
wait_idle() {
    [ -n "$server_pid" ] || return 0
    local i a b
    for ((i = 0; i < 60; i++)); do
        a=$(awk '{print $14 + $15}' "/proc/$server_pid/stat" 2>/dev/null) || return 0
        sleep 0.5
        b=$(awk '{print $14 + $15}' "/proc/$server_pid/stat" 2>/dev/null) || return 0
        # clock ticks are 1/100 s: 2.5 ticks in 0.5 s is 5%
        [ $((b - a)) -ge 3 ] || return 0
    done
}

# The peak: the rate asked for climbs by CHAT_STEP from CHAT_START_RATE
# until the server falls behind (report.py step: delivers under 95% of it,
# loses messages or has a p99 over 1 s).  report.py makes the peak of the
# steps (peak_run: what counts when the load tool was busy too).
run_chat_peak() {
    local name=$1 rate=$CHAT_START_RATE step verdict
    for ((step = 1; step <= CHAT_STEPS; step++)); do
        bench "$name" "chat-step$step" --scenario chat --users "$CHAT_USERS" --rate "$RATE" \
            --msg-rate "$rate" --duration "$CHAT_STEP_DURATION"
        verdict=$("$PY" "$here/report.py" step --results "$results" --server "$name" \
            --label "chat-step$step")
        say "$name: step $step at $rate msgs/s: $verdict"
        wait_idle
        [ "$verdict" = keeps-up ] || break
        rate=$("$PY" -c "print(round($rate * $CHAT_STEP))")
    done
}

# The headline: each rate of CHAT_RATES for CHAT_RATE_DURATION, the same
# for every server.  Each message goes out in a write of its own (every
# sender sends far less than once per millisecond), and report.py divides
# the server's CPU time in the window by the messages delivered in it
# (server_cpu_us_per_msg).  A rate the server cannot keep up with is run
# all the same: its achieved rate and cost are the figures.
run_chat_rates() {
    local name=$1 r
    for r in $CHAT_RATES; do
        bench "$name" "chat-at-$r" --scenario chat --users "$CHAT_USERS" --rate "$RATE" \
            --msg-rate "$r" --duration "$CHAT_RATE_DURATION"
        say "$name: chat at $r msgs/s: $("$PY" "$here/report.py" step --results "$results" \
            --server "$name" --label "chat-at-$r")"
        wait_idle
    done
}

run_chat() {
    local name=$1
    run_chat_rates "$name"
    run_chat_peak "$name"
    if [ -n "$CHAT_RATE" ]; then
        bench "$name" chat --scenario chat --users "$CHAT_USERS" --rate "$RATE" \
            --msg-rate "$CHAT_RATE" --duration "$CHAT_DURATION"
        wait_idle
    fi
}

run_presence() {
    local name=$1
    bench "$name" presence-setup --scenario presence --setup --users "$PRES_USERS" \
        --first-user "$PRES_FIRST" \
        --roster "$ROSTER" --rate "$RATE" --setup-timeout "$PRES_SETUP_TIMEOUT"
    if ! "$PY" "$here/report.py" get --results "$results" --server "$name" \
        --label presence-setup --key setup_complete | grep -qx true; then
        say "$name: the rosters are not complete; no presence measurement"
        return 0
    fi
    bench "$name" presence --scenario presence --users "$PRES_USERS" --first-user "$PRES_FIRST" \
        --roster "$ROSTER" \
        --rate "$RATE" --presence-rate "$PRES_RATE" --duration "$PRES_DURATION"
}

# ---- the run ------------------------------------------------------------------------
failed=0
if [ "$only_s2s" = 1 ]; then
    run_s2s_part
    "$PY" "$here/report_s2s.py" --results "$s2s_results" --output "$output" \
        --users "$S2S_USERS" --duration "$S2S_DURATION" --links "$S2S_LINKS" --busy "$(cut -d' ' -f1-3 /proc/loadavg)"
    cp "$s2s_results" "${output%.md}-s2s.jsonl"
    say "wrote the Federation section of $output"
    exit 0
fi
if [ "$check_only" = 0 ]; then
    # The machine's own latency between the two CPUs, before any server runs.
    say "machine: latency floor between CPU $SERVER_CPU and CPU $TOOL_CPU (10 s)"
    rc=0
    "$TERN_BENCH" floor --cpus "$SERVER_CPU,$TOOL_CPU" --duration 10 --json-only \
        >"$WORK/floor.json" 2>"$WORK/floor.err" || rc=$?
    "$PY" "$here/report.py" add --results "$results" --server machine --label floor \
        --exit "$rc" --json "$WORK/floor.json" --args "floor --duration 10" >&2
fi
for s in $SERVERS; do
    start_server "$s"
    [ "$s" != ejabberd ] || ejabberd_load_users
    if ! taskset -c "$TOOL_CPU" "$PY" "$here/check_servers.py" --name "$s" \
        --port "${PORT[$s]}" --domain "$DOMAIN" --password "$PASSWORD" \
        --iterations "$ITERATIONS" --users u1 u2 >&2; then
        failed=1
        stop_server || true
        say "$s: the pre-flight check failed; its scenarios are skipped"
        continue
    fi
    [ "$check_only" = 1 ] || run_scenarios "$s"
    stop_server || failed=1
done

[ "$s2s" = 0 ] || run_s2s_part

if [ "$check_only" = 1 ]; then
    [ "$failed" = 0 ] || die "a server failed its check or left processes behind"
    say "all servers passed the check"
    exit 0
fi

# ---- the report ------------------------------------------------------------------------
{
    for n in SERVERS SCENARIOS DOMAIN ITERATIONS ACCOUNTS USERS RATE HOLD PROCESSES CHAT_USERS \
        CHAT_RATES CHAT_RATE_DURATION CHAT_DURATION CHAT_START_RATE CHAT_STEP CHAT_STEPS \
        CHAT_STEP_DURATION CHAT_RATE PRES_USERS ROSTER PRES_RATE PRES_DURATION PRES_SETUP_TIMEOUT \
        PRES_FIRST ROSTER_PRELOAD SERVER_CPU TOOL_CPU SOURCE_IPS; do
        printf '%s=%s\n' "$n" "${!n}"
    done
    for s in "${!PROVISION_S[@]}"; do printf 'PROVISION_S_%s=%s\n' "$s" "${PROVISION_S[$s]}"; done
    printf 'ELAPSED_S=%s\n' $(($(date +%s) - t_start))
    printf 'TERND=%s\nTERN_BENCH=%s\n' "$build/ternd" "$TERN_BENCH"
} >"$WORK/params"
"$PY" "$here/report.py" write --results "$results" --params "$WORK/params" --output "$output"
if [ "$s2s" = 1 ]; then
    "$PY" "$here/report_s2s.py" --results "$s2s_results" --output "$output" \
        --users "$S2S_USERS" --duration "$S2S_DURATION" --links "$S2S_LINKS" \
        --busy "$(cut -d' ' -f1-3 /proc/loadavg)"
    cp "$s2s_results" "${output%.md}-s2s.jsonl"
fi
cp "$results" "${output%.md}.jsonl"
say "wrote $output (raw results: ${output%.md}.jsonl)"
[ "$failed" = 0 ] || die "a server failed its check or left processes behind"
