#!/bin/sh
# Runs one libFuzzer target for DIPX_FUZZ_SECONDS (default 60) seconds, new
# inputs going to a work directory, never into the checked-in corpus.
# usage: run_fuzzer.sh BINARY WORKDIR CORPUS
set -eu
mkdir -p "$2"
exec "$1" -max_total_time="${DIPX_FUZZ_SECONDS:-60}" -print_final_stats=1 "$2" "$3"
