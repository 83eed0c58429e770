#!/bin/sh
# test.sh — every test: unit (cmocka), end-to-end (pytest: real PostgreSQL,
# real binary, real RTMP clients and players), browser (headless Chromium)
# and a fuzz smoke run. Prints "N passed, M failed" last; exits non-zero on
# any failure. Called by `make test` (and `make test SAN=1`).
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
SAN=${SAN:-0}
pass=0
fail=0
failed_names=""

add() { pass=$((pass + $1)); fail=$((fail + $2)); }

# tally NAME RC OUTPUT PASSED_SED FAILED_SED: adds what one test runner
# reported (the sed expressions print its passed / failed counts; a non-zero
# exit with no failure counted is one failure) and says ok or FAIL.
tally() {
    p=$(printf '%s\n' "$3" | sed -n "$4" | tail -n 1)
    f=$(printf '%s\n' "$3" | sed -n "$5" | tail -n 1)
    p=${p:-0}
    f=${f:-0}
    if [ "$2" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    add "$p" "$f"
    if [ "$f" -ne 0 ]; then
        printf '%s\n' "$3" | tail -n 40
        failed_names="$failed_names $1"
        echo "FAIL $1 ($p passed, $f failed)"
    else
        echo "ok   $1 ($p passed)"
    fi
}

# A local PostgreSQL for every test level (unit tests of the state machine use it too).
stop_pg=0
if [ -z "${DATABASE_URL:-}" ]; then
    DATABASE_URL=$(CASTGATE_PG_FAST=1 sh scripts/pg.sh start var/test | tail -n 1) || {
        echo "FAIL: local PostgreSQL did not start"; echo "$pass passed, $((fail + 1)) failed"; exit 1; }
    stop_pg=1
fi
export DATABASE_URL

echo "== unit tests ($BUILD/tests)"
for t in "$BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    out=$("$t" 2>&1)
    rc=$?
    tally "$(basename "$t")" $rc "$out" \
        's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p'
done

# Debian's python3 has python3-pytest; a pyenv python earlier in PATH does not.
PY=python3
[ -x /usr/bin/python3 ] && PY=/usr/bin/python3
echo "== end-to-end tests (tests/e2e)"
export CASTGATE_BIN="$BUILD/castgate"
export CASTGATE_BUILD="$BUILD"
export CASTGATE_SAN="$SAN"
xml="$BUILD/e2e-junit.xml"
rm -f "$xml"
"$PY" -m pytest -q -p no:cacheprovider ${PYTEST_ARGS:-} --junitxml="$xml" tests/e2e
rc=$?
if [ -f "$xml" ]; then
    counts=$("$PY" - "$xml" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root)
t = sum(int(s.get("tests", 0)) for s in suites)
f = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
sk = sum(int(s.get("skipped", 0)) for s in suites)
print(t - f - sk, f)
PY
)
    add ${counts% *} ${counts#* }
    [ "${counts#* }" != 0 ] && failed_names="$failed_names e2e"
elif [ $rc -ne 0 ]; then
    add 0 1
    failed_names="$failed_names e2e(no report)"
fi

echo "== benchmark tool tests (bench/test_latency_probe.py, bench/test_run.py)"
for t in test_latency_probe test_run; do
    out=$("$PY" "bench/$t.py" 2>&1)
    rc=$?
    tally "bench/$t.py" $rc "$out" \
        's/^\([0-9]*\) passed, \([0-9]*\) failed.*/\1/p' 's/^\([0-9]*\) passed, \([0-9]*\) failed.*/\2/p'
done

if [ -d tests/browser ] && ls tests/browser/*.test.mjs >/dev/null 2>&1; then
    echo "== browser tests (tests/browser, headless Chromium)"
    for t in tests/browser/*.test.mjs; do
        if node --test "$t"; then add 1 0; else add 0 1; failed_names="$failed_names $(basename "$t")"; fi
    done
fi

if [ "$SAN" != 1 ] && ls tests/fuzz/fuzz_*.c >/dev/null 2>&1; then
    echo "== fuzz smoke (each target ${FUZZ_SMOKE_SECONDS:-5}s)"
    if make -s fuzz-bins >/dev/null 2>"$BUILD/fuzz-build.log"; then
        for f in build/fuzz/fuzz_*; do
            [ -x "$f" ] || continue
            if sh scripts/fuzz.sh "${FUZZ_SMOKE_SECONDS:-5}" "$f" >/dev/null 2>&1; then
                add 1 0; echo "ok   $(basename "$f")"
            else
                add 0 1; failed_names="$failed_names $(basename "$f")"; echo "FAIL $(basename "$f")"
            fi
        done
    else
        tail -20 "$BUILD/fuzz-build.log"
        add 0 1; failed_names="$failed_names fuzz-build"
    fi
fi

[ $stop_pg -eq 1 ] && sh scripts/pg.sh stop var/test
[ -n "$failed_names" ] && echo "failed:$failed_names"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
