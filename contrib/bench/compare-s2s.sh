# shellcheck shell=bash disable=SC2154
# contrib/bench/compare-s2s.sh — the federation part of compare.sh
# (sourced by it: uses its WORK, PY, here, build, say, die, free_port,
# TERN_BENCH, PASSWORD, ITERATIONS, SERVER_CPU, TOOL_CPU; its results go
# to s2s_results, apart from the others).
#
# Owns, for each server of S2S_SERVERS, two instances of it federating:
# server A (a.test) on 127.0.0.2 and server B (b.test) on 127.0.0.3, each
# with a c2s and an s2s listener on its own address (the same two ports
# on both), both pinned to SERVER_CPU; one dnsmasq for all of them
# (_xmpp-server._tcp SRV records and the addresses, nothing else
# answered: `--no-resolv --local=/test/`); a private test CA
# (tests/integration/pki.py) that issued both servers' certificates and
# that every server trusts for s2s, with no fallback to dialback.  Then:
#
#   s2s-first   one user of A and one of B, on freshly started servers,
#               send each other one message a second: the first one each
#               way opens a link (DNS, TCP, TLS, authentication):
#               tern-bench's first_msg_ms_*; the RSS each server gained
#               while the links opened is the memory of one link each way
#               (one outgoing and one incoming connection per server).
#   s2s-links   the same with user 1 of A also asking each of S2S_LINKS
#               other domains of B (l1..lN.b.test) for disco#info: a link
#               to each (and one back, unless the servers use one both
#               ways): RSS growth / the s2s connections the kernel shows
#               open on each server at the end.
#   s2s-warm    on fresh servers again, one message each way, so that
#               the links are open before the measured runs.
#   s2s-at-R    S2S_USERS users on each side chatting at R msgs/s in total
#               (half A to B, half B to A) for S2S_DURATION s, for each R
#               of S2S_RATES: CPU per delivered message of both servers
#               together (servers_cpu_us_per_msg), latency p50/p99.
#
# report_s2s.py writes the "Federation" section of doc/performance.md.

S2S_SERVERS=${BENCH_S2S_SERVERS:-$SERVERS}
S2S_USERS=${BENCH_S2S_USERS:-500}
S2S_RATES=${BENCH_S2S_RATES-"1000 2000"}
S2S_DURATION=${BENCH_S2S_DURATION:-20}
S2S_LINKS=${BENCH_S2S_LINKS:-50}
S2S_ADDR=(127.0.0.2 127.0.0.3)
S2S_DOM=(a.test b.test)
S2S_SIDE=(a b)

for s in $S2S_SERVERS; do
    case $s in tern | prosody | ejabberd) ;; *) die "unknown server '$s' in BENCH_S2S_SERVERS" ;; esac
done
[[ $S2S_USERS =~ ^[1-9][0-9]*$ ]] || die "BENCH_S2S_USERS must be a whole number above 0"
[[ $S2S_LINKS =~ ^[0-9]+$ ]] || die "BENCH_S2S_LINKS must be a whole number"
[[ $S2S_DURATION =~ ^[0-9]+([.][0-9]+)?$ ]] || die "BENCH_S2S_DURATION must be a number"
for r in $S2S_RATES; do
    [[ $r =~ ^[1-9][0-9]*$ ]] || die "BENCH_S2S_RATES must be whole numbers above 0, not '$r'"
done

# shellcheck disable=SC2034
s2s_pids=() s2s_launchers=() s2s_dns_pid="" s2s_current="" s2s_results=""

# The CA, both certificates and the DNS server: once for the whole part.
s2s_setup() {
    local d="$WORK/s2s"
    mkdir -p "$d/ca"
    s2s_results="$WORK/results-s2s.jsonl"
    S2S_C2S_PORT=$(free_port)
    S2S_PORT=$(free_port)
    S2S_DNS_PORT=$(free_port)
    # serverAuth and clientAuth: each server is the TLS client of its
    # outgoing links; no XmppAddr (ejabberd 23.01 fails on it)
    "$PY" - "$top/tests/integration" "$d/ca" "$S2S_LINKS" >"$d/ca/path" <<'EOF' ||
import sys
sys.path.insert(0, sys.argv[1])
from pki import TestCA
ca = TestCA(sys.argv[2])
links = ["l%d.b.test" % k for k in range(1, int(sys.argv[3]) + 1)]
ca.issue("a.test", ["a.test"], eku=("server", "client"), stem="a.test")
ca.issue("b.test", ["b.test"] + links, eku=("server", "client"), stem="b.test")
print(ca.cert_path)
EOF
        die "s2s: making the test CA failed"
    S2S_CA=$(cat "$d/ca/path")
    chmod 755 "$d" "$d/ca"
    chmod 644 "$d"/ca/*
    # SRV targets are address literals: ejabberd 23.01 resolves them as
    # they are, and Prosody and Tern accept them too.
    local args=(--no-daemon --no-resolv --no-hosts --port="$S2S_DNS_PORT"
        --listen-address=127.0.0.1 --bind-interfaces --conf-file=/dev/null
        --local=/test/ --local-ttl=60)
    local i
    for i in 0 1; do
        args+=(--srv-host="_xmpp-server._tcp.${S2S_DOM[$i]},${S2S_ADDR[$i]},$S2S_PORT,0,0"
            --host-record="${S2S_DOM[$i]},${S2S_ADDR[$i]}")
    done
    for ((i = 1; i <= S2S_LINKS; i++)); do
        args+=(--srv-host="_xmpp-server._tcp.l$i.b.test,${S2S_ADDR[1]},$S2S_PORT,0,0")
    done
    setpriv --pdeathsig TERM dnsmasq "${args[@]}" >"$d/dnsmasq.log" 2>&1 &
    s2s_dns_pid=$!
    for i in $(seq 40); do
        ss -Hlun "sport = :$S2S_DNS_PORT" | grep -q . && break
        sleep 0.1
    done
    kill -0 "$s2s_dns_pid" 2>/dev/null || die "s2s: dnsmasq did not start: $(cat "$d/dnsmasq.log")"
    say "s2s: dnsmasq on 127.0.0.1:$S2S_DNS_PORT, CA $S2S_CA, c2s port $S2S_C2S_PORT, s2s port $S2S_PORT"
}

s2s_render() { # s2s_render TEMPLATE OUTPUT SIDE(0/1) STATE
    local i=$3
    sed -e "s|@STATE@|$4|g" -e "s|@PORT@|$S2S_C2S_PORT|g" -e "s|@S2S_PORT@|$S2S_PORT|g" \
        -e "s|@ADDR@|${S2S_ADDR[$i]}|g" -e "s|@DOMAIN@|${S2S_DOM[$i]}|g" \
        -e "s|@DNS_PORT@|$S2S_DNS_PORT|g" -e "s|@CA@|$S2S_CA|g" \
        -e "s|@ITERATIONS@|$ITERATIONS|g" -e "s|@CERT@|$WORK/s2s/ca/${S2S_DOM[$i]}.crt|g" \
        -e "s|@KEY@|$WORK/s2s/ca/${S2S_DOM[$i]}.key|g" \
        -e "s|@MODULE_PATH@|$build/modules/.libs|g" "$here/$1" >"$2"
}

# B's domains l1..lN.b.test (--links), in the syntax of server NAME.
s2s_link_hosts() { # s2s_link_hosts NAME CONFIG
    local k
    for ((k = 1; k <= S2S_LINKS; k++)); do
        case $1 in
        tern) printf '  "l%d.b.test": {}\n' "$k" >>"$2" ;;
        prosody) printf 'VirtualHost "l%d.b.test"\n' "$k" >>"$2" ;;
        ejabberd) sed -i "/^  - \"b.test\"\$/a\\  - \"l$k.b.test\"" "$2" ;;
        esac
    done
}

# Configuration and accounts u1..S2S_USERS of both instances of NAME,
# in fresh folders (a run starts from an empty server).
s2s_prepare() { # s2s_prepare NAME
    local name=$1 i dir
    for i in 0 1; do
        dir="$WORK/s2s/$name-${S2S_SIDE[$i]}"
        rm -rf "$dir"
        mkdir -p "$dir"
        case $name in
        tern)
            s2s_render tern-s2s.yml.in "$dir/tern.yml" "$i" "$dir"
            [ "$i" = 0 ] || s2s_link_hosts tern "$dir/tern.yml"
            for ((u = 1; u <= S2S_USERS; u++)); do echo "u$u@${S2S_DOM[$i]} $PASSWORD"; done |
                taskset -c "$SERVER_CPU" "$build/ternctl" -c "$dir/tern.yml" adduser-batch \
                    >"$dir/provision.log" 2>&1 || die "s2s: tern accounts: $(cat "$dir/provision.log")"
            ;;
        prosody)
            mkdir -p "$dir/data" "$dir/certs"
            s2s_render prosody-s2s.cfg.lua.in "$dir/prosody.cfg.lua" "$i" "$dir"
            [ "$i" = 0 ] || s2s_link_hosts prosody "$dir/prosody.cfg.lua"
            taskset -c "$TOOL_CPU" "$PY" "$here/provision.py" --domain "${S2S_DOM[$i]}" \
                --users "$S2S_USERS" --password "$PASSWORD" --iterations "$ITERATIONS" --jobs 1 \
                --prosody-data "$dir/data" >"$dir/provision.log" 2>&1 ||
                die "s2s: prosody accounts: $(cat "$dir/provision.log")"
            ;;
        ejabberd)
            mkdir -p "$dir/spool" "$dir/logs"
            s2s_render ejabberd-s2s.yml.in "$dir/ejabberd.yml" "$i" "$dir"
            [ "$i" = 0 ] || s2s_link_hosts ejabberd "$dir/ejabberd.yml"
            cat "$WORK/s2s/ca/${S2S_DOM[$i]}.crt" "$WORK/s2s/ca/${S2S_DOM[$i]}.key" >"$dir/server.pem"
            printf '{resolv_conf, ""}.\n{hosts_file, ""}.\n{nameserver, {127,0,0,1}, %s}.\n' \
                "$S2S_DNS_PORT" >"$dir/inetrc"
            printf '{lookup, [dns]}.\n' >>"$dir/inetrc"
            local dist
            dist=$(free_port)
            echo "$dist" >"$dir/dist_port"
            cat >"$dir/ejabberdctl.cfg" <<EOF
ERLANG_NODE=ejabberd_${S2S_SIDE[$i]}@localhost
ERL_DIST_PORT=$dist
INET_DIST_INTERFACE=127.0.0.1
ERL_MAX_PORTS=65536
ERL_PROCESSES=1000000
ERL_OPTIONS="+S 1:1 +sbwt none +sbwtdcpu none +sbwtdio none -env ERL_CRASH_DUMP_BYTES 0"
EJABBERD_PID_PATH=$dir/ejabberd.pid
EJABBERD_BYPASS_WARNINGS=true
EOF
            head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/.erlang.cookie"
            chmod 400 "$dir/.erlang.cookie"
            taskset -c "$TOOL_CPU" "$PY" "$here/provision.py" --domain "${S2S_DOM[$i]}" \
                --users "$S2S_USERS" --password "$PASSWORD" --iterations "$ITERATIONS" --jobs 1 \
                --ejabberd-terms "$dir/users.eterm" >"$dir/provision.log" 2>&1 ||
                die "s2s: ejabberd accounts: $(cat "$dir/provision.log")"
            chmod 644 "$dir/users.eterm"
            chown -R ejabberd:ejabberd "$dir"
            ;;
        esac
    done
}

# Start instance SIDE (0 = A, 1 = B) of NAME; sets s2s_pids[SIDE].
s2s_start() { # s2s_start NAME SIDE
    local name=$1 i=$2 dir="$WORK/s2s/$1-${S2S_SIDE[$2]}" log pid="" k
    log="$dir/stdout.log"
    case $name in
    tern)
        (cd "$dir" && exec taskset -c "$SERVER_CPU" "$build/ternd" -c "$dir/tern.yml") >"$log" 2>&1 &
        s2s_launchers[i]=$!
        pid=$!
        ;;
    prosody)
        (cd "$dir" && exec taskset -c "$SERVER_CPU" prosody --config "$dir/prosody.cfg.lua" -F) \
            >"$log" 2>&1 &
        s2s_launchers[i]=$!
        pid=$!
        ;;
    ejabberd)
        rm -f "$dir/ejabberd.pid"
        (cd "$dir" && exec taskset -c "$SERVER_CPU" setpriv --reuid=ejabberd --regid=ejabberd \
            --init-groups env HOME="$dir" USER=ejabberd LOGNAME=ejabberd \
            /usr/sbin/ejabberdctl --config-dir "$dir" --config "$dir/ejabberd.yml" \
            --ctl-config "$dir/ejabberdctl.cfg" --logs "$dir/logs" --spool "$dir/spool" \
            foreground) >"$log" 2>&1 &
        s2s_launchers[i]=$!
        ;;
    esac
    for ((k = 0; k < 240; k++)); do
        kill -0 "${s2s_launchers[$i]}" 2>/dev/null || {
            cat "$log" >&2
            die "s2s: $name ${S2S_DOM[$i]} exited at start (log above)"
        }
        if [ "$name" = ejabberd ] && [ -z "$pid" ] && [ -s "$dir/ejabberd.pid" ]; then
            pid=$(cat "$dir/ejabberd.pid")
        fi
        if [ -n "$pid" ] && ss -Hltn "src ${S2S_ADDR[$i]}:$S2S_C2S_PORT" | grep -q LISTEN &&
            ss -Hltn "src ${S2S_ADDR[$i]}:$S2S_PORT" | grep -q LISTEN; then
            s2s_pids[i]=$pid
            say "s2s: $name ${S2S_DOM[$i]} listening on ${S2S_ADDR[$i]} (pid $pid)"
            return 0
        fi
        sleep 0.25
    done
    die "s2s: $name ${S2S_DOM[$i]} did not listen within 60 s"
}

s2s_load_ejabberd_users() { # s2s_load_ejabberd_users SIDE
    local i=$1 dir="$WORK/s2s/ejabberd-${S2S_SIDE[$1]}" out
    out=$(cd "$dir" && HOME="$dir" taskset -c "$TOOL_CPU" erl -sname "benchctl$$${S2S_SIDE[$i]}@localhost" \
        -hidden -noshell -noinput -start_epmd false -erl_epmd_port "$(cat "$dir/dist_port")" \
        -dist_listen false -setcookie "$(cat "$dir/.erlang.cookie")" -eval '
        Node = '"'ejabberd_${S2S_SIDE[$i]}@localhost'"',
        {ok, Terms} = file:consult("'"$dir/users.eterm"'"),
        Rs = [rpc:call(Node, ejabberd_auth, try_register, [U, H, P]) || {U, H, P} <- Terms],
        case [R || R <- Rs, R =/= ok, R =/= {error, exists}] of
            [] -> io:format("~b accounts created", [length(Rs)]), halt(0);
            Bad -> io:format("~b of ~b failed, first: ~p~n", [length(Bad), length(Rs), hd(Bad)]),
                   halt(1)
        end.' 2>&1) || die "s2s: ejabberd ${S2S_DOM[$i]}: loading the accounts failed: $out"
    say "s2s: ejabberd ${S2S_DOM[$i]}: $out"
}

s2s_stop() {
    local i k pid
    for i in 0 1; do
        pid=${s2s_pids[$i]:-}
        [ -n "$pid" ] || pid=${s2s_launchers[$i]:-}
        [ -n "$pid" ] || continue
        kill -TERM "$pid" 2>/dev/null || true
        for ((k = 0; k < 120; k++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.25
        done
        kill -KILL "$pid" 2>/dev/null || true
        [ -z "${s2s_launchers[$i]:-}" ] || wait "${s2s_launchers[$i]}" 2>/dev/null || true
    done
    s2s_pids=() s2s_launchers=()
    local left p
    left=$(pgrep -f "$WORK/s2s/" || true)
    for p in $(epmd_pids); do
        case " $epmd_before " in *" $p "*) ;; *) left="$left $p" ;; esac
    done
    left=$(xargs <<<"$left")
    if [ -n "$left" ]; then
        say "s2s: $s2s_current: processes left behind: $(ps -o pid=,args= -p "${left// /,}" | tr '\n' ';')"
        # shellcheck disable=SC2086
        kill -KILL $left 2>/dev/null || true
    fi
    s2s_current=""
}

s2s_cleanup() {
    [ -z "$s2s_current" ] || s2s_stop
    if [ -n "$s2s_dns_pid" ]; then
        kill -TERM "$s2s_dns_pid" 2>/dev/null || true
        wait "$s2s_dns_pid" 2>/dev/null || true
        s2s_dns_pid=""
    fi
}

s2s_bench() { # s2s_bench NAME LABEL ARGS...
    local name=$1 label=$2 rc=0 out="$WORK/s2s/$1-$2"
    shift 2
    say "s2s: $name: $label ($*)"
    taskset -c "$TOOL_CPU" "$TERN_BENCH" --scenario s2s \
        --server "${S2S_ADDR[0]}" --port "$S2S_C2S_PORT" --domain "${S2S_DOM[0]}" \
        --server2 "${S2S_ADDR[1]}:$S2S_C2S_PORT" --domain2 "${S2S_DOM[1]}" \
        --password "$PASSWORD" --mechanism SCRAM-SHA-1 --processes 1 \
        --server-pid "${s2s_pids[0]}" --server2-pid "${s2s_pids[1]}" --json-only "$@" \
        >"$out.json" 2>"$out.err" || rc=$?
    "$PY" "$here/report.py" add --results "$s2s_results" --server "$name" --label "$label" \
        --exit "$rc" --json "$out.json" --args "--scenario s2s $*" >&2
}

# The s2s connections each server has open now (in and out, counted by
# the kernel: with XEP-0288 one connection carries both ways), as a
# result line of its own.
s2s_count_conns() { # s2s_count_conns NAME LABEL
    local i n=() in out
    for i in 0 1; do
        in=$(ss -Htn state established "src ${S2S_ADDR[$i]}:$S2S_PORT" | wc -l)
        out=$(ss -Htn state established "dst ${S2S_ADDR[$((1 - i))]}:$S2S_PORT" | wc -l)
        n+=($((in + out)))
    done
    say "s2s: $1: s2s connections open: a.test ${n[0]}, b.test ${n[1]}"
    printf '{"server": "%s", "label": "%s", "exit": 0, "args": "", "result": {"s2s_conns_a": %d, "s2s_conns_b": %d}}\n' \
        "$1" "$2" "${n[0]}" "${n[1]}" >>"$s2s_results"
}

s2s_start_both() { # s2s_start_both NAME
    s2s_current=$1
    s2s_start "$1" 0
    s2s_start "$1" 1
    if [ "$1" = ejabberd ]; then
        s2s_load_ejabberd_users 0
        s2s_load_ejabberd_users 1
    fi
}

s2s_run() { # s2s_run NAME
    local name=$1 r
    s2s_prepare "$name"
    # The first message of a link, and the memory of one link each way,
    # on servers that have never been in touch.
    s2s_start_both "$name"
    s2s_bench "$name" s2s-first --users 1 --rate 10 --msg-rate 2 --duration 3 --drain 10
    s2s_stop
    # Memory per connection: A's user asks B's S2S_LINKS other domains
    # (a link there and one back each), on fresh servers again.
    if [ "$S2S_LINKS" -gt 0 ]; then
        s2s_start_both "$name"
        s2s_bench "$name" s2s-links --users 1 --rate 10 --msg-rate 2 --duration 5 --drain 10 \
            --links "$S2S_LINKS"
        s2s_count_conns "$name" s2s-links-conns
        s2s_stop
    fi
    # The fixed rates, on links that are open already: one message each
    # way first (one after the other, as in s2s-first), so that the
    # windows measure traffic, not the opening of links.
    s2s_start_both "$name"
    s2s_bench "$name" s2s-warm --users 1 --rate 10 --msg-rate 2 --duration 2 --drain 10
    for r in $S2S_RATES; do
        s2s_bench "$name" "s2s-at-$r" --users "$S2S_USERS" --rate 200 --msg-rate "$r" \
            --duration "$S2S_DURATION" --drain 10
        wait_idle_pids
    done
    s2s_stop
}

wait_idle_pids() {
    local saved=$server_pid p
    for p in "${s2s_pids[@]}"; do
        server_pid=$p
        wait_idle
    done
    server_pid=$saved
}

run_s2s_part() {
    s2s_setup
    local s
    for s in $S2S_SERVERS; do
        s2s_run "$s"
    done
    s2s_cleanup
}
