#!/bin/sh
# fuzz.sh SECONDS TARGET... — runs each libFuzzer target for SECONDS on its
# corpus (tests/fuzz/corpus/NAME, seeds kept in git; new finds go to a
# scratch copy under build/fuzz/corpus so the repo stays clean).
set -eu
secs=$1; shift
status=0
for t in "$@"; do
    name=$(basename "$t" | sed 's/^fuzz_//')
    seeds="tests/fuzz/corpus/$name"
    work="build/fuzz/corpus/$name"
    mkdir -p "$work" "$seeds"
    echo "fuzz: $name for ${secs}s"
    if ! "$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -artifact_prefix="build/fuzz/$name-" \
            "$work" "$seeds" 2>"build/fuzz/$name.log"; then
        echo "fuzz: $name FOUND A CRASH, see build/fuzz/$name.log" >&2
        tail -30 "build/fuzz/$name.log" >&2
        status=1
    fi
done
exit $status
