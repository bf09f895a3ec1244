#!/bin/sh
# Runs one libFuzzer target for DIPX_FUZZ_SECONDS (default 60) seconds, new
# inputs going to a work directory, never into the checked-in corpus, and a
# crashing input to WORKDIR/crash-* (leak-*, timeout-*, oom-*).
# usage: run_fuzzer.sh BINARY WORKDIR CORPUS MAX_LEN
# MAX_LEN: the largest input generated; above the decoder's own limit, so
# that the limit itself is fuzzed (libFuzzer's default is 4096).
set -eu
mkdir -p "$2"
exec "$1" -max_total_time="${DIPX_FUZZ_SECONDS:-60}" -print_final_stats=1 \
    -max_len="$4" -artifact_prefix="$2/" "$2" "$3"
