#!/bin/sh
# contrib/deps.sh — install with apt-get what building (and, with --test,
# testing) Tern needs and the machine lacks.  Debian 12; run as root.
set -eu
BUILD="build-essential autoconf automake libtool pkg-config libevent-dev libexpat1-dev
libssl-dev libsqlite3-dev libidn2-dev libunistring-dev libyaml-dev libc-ares-dev
libhttp-parser-dev libwslay-dev"
# dnsmasq serves the DNS records of the resolver tests (tests/unit/test_resolver.c,
# tests/integration/dns.py).
# python3-cryptography makes the test CA of the federation tests (tests/integration/pki.py).
# clang and libclang-rt-14-dev (libFuzzer) build the fuzz targets (tests/fuzz/).
# The federation tests run a private DNS server (dnsmasq), a test CA
# (python3-cryptography) and real peer servers (prosody with lua-unbound,
# ejabberd): see tests/integration/peers.py.  Their system services are not
# used; the tests start their own instances on free ports.
TEST="python3 python3-slixmpp profanity poezio go-sendxmpp tmux openssl sqlite3 procps cppcheck
clang-format clang libclang-rt-14-dev python3-cryptography dnsmasq prosody lua-unbound ejabberd
python3-websockets"
want="$BUILD"
[ "${1:-}" = "--test" ] && want="$BUILD $TEST"
missing=""
for p in $want; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
