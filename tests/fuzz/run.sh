#!/bin/sh
# tests/fuzz/run.sh — build the libFuzzer targets (build.sh) and run each
# for a bounded time from its seed corpus (corpus/<target>/).  Prints one
# line per target, then "N passed, N failed"; exits 1 when a target
# crashed, leaked, or failed to build.  The reproducer of a crash is kept
# in build/fuzz/crashes/<target>/ and its log in build/fuzz/<target>.log.
#
# -len_control=10 lets inputs grow to a few KiB within seconds, where the
# stanza tree's allocation sizes are.
#
# Environment: FUZZ_SECONDS per target (default 50: five targets stay
# under 5 minutes), FUZZ_TARGETS to run only some, FUZZ_BUILD to use
# another build folder.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
out=${FUZZ_BUILD:-"$top/build/fuzz"}
seconds=${FUZZ_SECONDS:-50}
targets=${FUZZ_TARGETS:-"fuzz_xml_stream fuzz_xml_tree fuzz_jid fuzz_scram fuzz_config"}
passed=0
failed=0
mkdir -p "$out"

if ! sh "$top/tests/fuzz/build.sh" "$out" >"$out.build.log" 2>&1; then
    echo "fuzz build: FAILED"
    tail -n 30 "$out.build.log"
    echo "0 passed, 1 failed"
    exit 1
fi

for t in $targets; do
    work="$out/corpus/$t"
    crashes="$out/crashes/$t"
    mkdir -p "$work" "$crashes"
    # New inputs go to the scratch corpus, never into the seeds.
    if ASAN_OPTIONS="detect_leaks=1:abort_on_error=0" \
        UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
        "$out/$t" -max_total_time="$seconds" -max_len=20000 -len_control=10 -timeout=10 -rss_limit_mb=2048 \
        -print_final_stats=1 -artifact_prefix="$crashes/" \
        "$work" "$top/tests/fuzz/corpus/$t" >"$out/$t.log" 2>&1; then
        runs=$(grep -E '^stat::number_of_executed_units' "$out/$t.log" | awk '{print $2}')
        echo "fuzz $t: ok (${runs:-?} runs in ${seconds}s)"
        passed=$((passed + 1))
    else
        echo "fuzz $t: FAILED"
        grep -E 'ERROR|SUMMARY|Test unit written|runtime error' "$out/$t.log" | head -n 8
        failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
