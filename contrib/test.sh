#!/bin/sh
# contrib/test.sh — the whole test run: install what is missing, build
# with AddressSanitizer and UndefinedBehaviorSanitizer, run the C unit tests,
# the fuzz targets (tests/fuzz/run.sh) and the integration tests against a
# live ternd, and end with one line
# "N passed, N failed".
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
sh contrib/deps.sh --test

build="$top/build/asan"
mkdir -p "$build"
[ -x configure ] || autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
cd "$build"
if [ ! -f Makefile ]; then
    "$top/configure" --enable-sanitizers --enable-werror --prefix="$build/install" \
        CFLAGS="-g -O1" >/dev/null
fi
make -j"$(nproc)" >/dev/null
make -j"$(nproc)" tests/unit/test_xml tests/unit/test_jid tests/unit/test_scram \
    tests/unit/test_store tests/unit/test_store_async tests/unit/test_config tests/unit/test_router tests/unit/test_tls \
    tests/unit/test_module_api tests/unit/test_hashmap tests/unit/test_limits \
    tests/unit/test_hooks tests/unit/test_base64 tests/unit/test_strlist \
    tests/unit/test_transport tests/unit/test_framing \
    tests/unit/test_router_rules tests/unit/test_domains tests/unit/test_sessions tests/unit/test_fanout \
    tests/unit/test_resolver tests/unit/test_account_names tests/unit/test_dialback \
    tests/unit/test_sm_count tests/unit/test_http \
    tests/modules/mod_badhook.la tests/modules/mod_oldabi.la tests/modules/mod_streamtest.la \
    tests/modules/mod_echo_service.la tests/modules/mod_muc_watch.la tests/modules/mod_httptest.la >/dev/null

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:exitcode=23"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
passed=0
failed=0
log="$build/test-logs"
rm -rf "$log"
mkdir -p "$log"

count() { # add the "N passed, N failed" line of a log to the totals
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1 || true)
    if [ -n "$line" ]; then
        p=$(echo "$line" | cut -d' ' -f1)
        f=$(echo "$line" | cut -d' ' -f3)
        passed=$((passed + p))
        failed=$((failed + f))
    fi
}

for t in test_xml test_jid test_scram test_store test_store_async test_config test_router test_tls test_module_api \
    test_hashmap test_limits test_hooks test_base64 test_strlist test_transport test_framing \
    test_router_rules test_domains test_sessions test_fanout test_resolver test_account_names test_dialback \
    test_sm_count test_http; do
    if (cd "$top" && "$build/tests/unit/$t") >"$log/$t.log" 2>&1; then
        echo "unit $t: $(tail -n 1 "$log/$t.log")"
    else
        echo "unit $t: FAILED"
        sed -n '1,60p' "$log/$t.log"
        grep -qE '^[0-9]+ passed, [0-9]+ failed' "$log/$t.log" || failed=$((failed + 1))
    fi
    count "$log/$t.log"
done

# Style: clang-format with the repository's .clang-format, and cppcheck.
cd "$top"
sources=$(git ls-files '*.c' '*.h' 2>/dev/null || find src modules include tests -name '*.[ch]')
if clang-format --dry-run -Werror $sources >"$log/format.log" 2>&1; then
    echo "lint clang-format: ok"; passed=$((passed + 1))
else
    echo "lint clang-format: FAILED"; head -n 20 "$log/format.log"; failed=$((failed + 1))
fi
if cppcheck -q --error-exitcode=1 --enable=warning,performance,portability -Iinclude -Isrc \
    --suppress=missingIncludeSystem src modules tests/unit contrib/bench >"$log/cppcheck.log" 2>&1; then
    echo "lint cppcheck: ok"; passed=$((passed + 1))
else
    echo "lint cppcheck: FAILED"; head -n 20 "$log/cppcheck.log"; failed=$((failed + 1))
fi

# Layers import one way (doc/hacking.md): no include in src/ goes upward.
if /usr/bin/python3 contrib/check-layers.py --self-test >"$log/layers.log" 2>&1 &&
    /usr/bin/python3 contrib/check-layers.py "$top" >>"$log/layers.log" 2>&1; then
    echo "lint layers: ok"; passed=$((passed + 1))
else
    echo "lint layers: FAILED"; head -n 40 "$log/layers.log"; failed=$((failed + 1))
fi

# The module option tables in doc/ are generated from the modules' own.
if /usr/bin/python3 contrib/module-docs.py --check "$build/ternd" "$build/modules/.libs" \
    >"$log/module-docs.log" 2>&1; then
    echo "lint module docs: ok"; passed=$((passed + 1))
else
    echo "lint module docs: FAILED"; head -n 40 "$log/module-docs.log"; failed=$((failed + 1))
fi

# Fuzzing: each libFuzzer target of tests/fuzz/ for a bounded time (under
# 5 minutes in all); one pass or fail per target, a crash fails.
if sh "$top/tests/fuzz/run.sh" >"$log/fuzz.log" 2>&1; then
    grep -E '^fuzz ' "$log/fuzz.log"
else
    grep -E '^fuzz |ERROR|SUMMARY|Test unit written' "$log/fuzz.log" | head -n 40
    grep -qE '^[0-9]+ passed, [0-9]+ failed' "$log/fuzz.log" || failed=$((failed + 1))
fi
count "$log/fuzz.log"

export TERND="$build/ternd" TERNCTL="$build/ternctl" TERN_MODULES="$build/modules/.libs"
if /usr/bin/python3 "$top/tests/integration/run.py" >"$log/integration.log" 2>&1; then
    echo "integration: $(grep -E '^[0-9]+ passed' "$log/integration.log" | tail -n 1)"
else
    echo "integration: FAILED"
    tail -n 80 "$log/integration.log"
    grep -qE '^[0-9]+ passed, [0-9]+ failed' "$log/integration.log" || failed=$((failed + 1))
fi
count "$log/integration.log"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
