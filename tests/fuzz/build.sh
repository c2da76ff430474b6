#!/bin/sh
# tests/fuzz/build.sh — build the libFuzzer targets (tests/fuzz/fuzz_*.c)
# with clang, AddressSanitizer and UndefinedBehaviorSanitizer into
# build/fuzz/ (or $1).  Each target links only the sources it tests;
# this build is kept apart from the automake one.  Needs clang and
# libclang-rt-14-dev (contrib/deps.sh --test).
set -eu
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:-"$top/build/fuzz"}
mkdir -p "$out"
CC=${CC:-clang}
FLAGS="-g -O1 -std=c11 -D_GNU_SOURCE -fno-omit-frame-pointer -Wall -Wextra -Werror
  -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
  -I$top/include -I$top/src -I$out"
cd "$top"
# The configure-made header some sources include: here only what the
# sanitizer build sets (a changed frozen stanza aborts, so fuzzing sees it).
printf '#define TERN_FREEZE_ABORT 1\n' >"$out/autoconfig.h"

XML="src/xml/xml_tree.c src/xml/xml_stream.c src/xml/xml_serialize.c"
JID="src/xmpp/jid.c"
CFG="src/config/cfg_yaml.c src/config/cfg_options.c src/config/cfg_server.c"

build() { # build TARGET SOURCES... -- LIBS...
    t=$1
    shift
    srcs=""
    while [ "$1" != "--" ]; do srcs="$srcs $1"; shift; done
    shift
    # shellcheck disable=SC2086
    $CC $FLAGS -o "$out/$t" "tests/fuzz/$t.c" $srcs "$@"
    echo "built $out/$t"
}

build fuzz_xml_stream $XML -- $(pkg-config --libs libevent expat)
build fuzz_xml_tree $XML -- $(pkg-config --libs libevent expat)
build fuzz_jid $JID -- $(pkg-config --libs libidn2) -lunistring
build fuzz_scram src/xmpp/scram.c src/util/base64.c -- $(pkg-config --libs libcrypto) -lunistring
build fuzz_config $CFG $JID -- $(pkg-config --libs yaml-0.1 libidn2) -lunistring
