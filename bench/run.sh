#!/bin/sh
# bench/run.sh - the standard dipx benchmark set, each run against a fresh
# private dipxd, figures to RESULTS/<name>.json and RESULTS/<name>.txt, and a
# summary table at the end (needs jq; the .txt files have everything).
#
#   bench/run.sh [RESULTS]                 (default ./bench-results)
#   cmake --build build --target bench     (the same, RESULTS in the build dir)
#
# Environment:
#   DIPX_BENCH        the dipx-bench executable (default: build/bench/dipx-bench)
#   DIPX_BENCH_IDLE   idle agencies for run 5 (default 2000; up to 10000)
#   DIPX_BENCH_DEEP   messages queued before run 4 (default 100000; 1000000
#                     takes about 2 minutes to fill and 4.6 GiB of disk)
#   DIPX_BENCH_AUDIT_ENTRIES  audit log size for run 6 (default 1000000;
#                     10000000 takes about 3 minutes to fill and 5 GiB of disk)
#   DIPX_BENCH_QUIET  wait (up to 5 minutes) for the 1-minute load average to
#                     fall below this before each run, e.g. 1.0; default: no wait
#   DIPX_BENCH_ONLY   run only the runs whose names contain this, e.g. "replay"
#
# Every run stays well under a minute on two cores. Speed is never a test:
# nothing here fails on a slow figure, only on a run that does not complete.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
bench=${DIPX_BENCH:-$here/../build/bench/dipx-bench}
out=${1:-./bench-results}
idle=${DIPX_BENCH_IDLE:-2000}
deep=${DIPX_BENCH_DEEP:-100000}
audit_entries=${DIPX_BENCH_AUDIT_ENTRIES:-1000000}
only=${DIPX_BENCH_ONLY:-}
mkdir -p "$out"
[ -x "$bench" ] || { echo "run.sh: $bench is not built (cmake --build build --target dipx_bench)" >&2; exit 2; }

wait_quiet() {
    [ -n "${DIPX_BENCH_QUIET:-}" ] || return 0
    i=0
    while [ $i -lt 60 ]; do
        load=$(cut -d' ' -f1 /proc/loadavg)
        if awk "BEGIN { exit !($load < $DIPX_BENCH_QUIET) }"; then return 0; fi
        [ $i -eq 0 ] && echo "run.sh: load average $load, waiting for < $DIPX_BENCH_QUIET" >&2
        sleep 5
        i=$((i + 1))
    done
    echo "run.sh: still busy (load $(cut -d' ' -f1 /proc/loadavg)); running anyway" >&2
}

failed=0
run() {
    name=$1
    shift
    case $name in *"$only"*) ;; *) return 0 ;; esac
    wait_quiet
    prog=$bench
    case $name in *audit*) prog=$(dirname "$bench")/dipx-bench-audit ;; esac
    echo "== $name: $(basename "$prog") $*"
    if "$prog" --quiet --json "$out/$name.json" "$@" >"$out/$name.txt" 2>&1; then
        cat "$out/$name.txt"
    else
        cat "$out/$name.txt"
        echo "run.sh: $name FAILED" >&2
        failed=1
    fi
}

# 1. Replay (envelopes sealed before the clock starts), 1 -> 1, max rate, with
#    the broker's verify threads at 0, 1 (the default) and 2.
run 1-replay-vt1 --mode replay --messages 20000 --verify-threads 1
run 1-replay-vt0 --mode replay --messages 20000 --verify-threads 0 --no-micro
run 1-replay-vt2 --mode replay --messages 20000 --verify-threads 2 --no-micro
#    The same with receivers that only acknowledge (signed ACKs; no signature
#    check or opening, as the compared brokers' consumers do no crypto), with
#    the default verify_threads and with 2.
run 1-replay-ack --mode replay --receive ack --messages 20000 --no-micro
run 1-replay-ack-vt2 --mode replay --receive ack --messages 20000 --verify-threads 2 --no-micro
# 2. Live: the sender seals and signs each message as it posts it.
run 2-live --messages 20000 --no-micro
# 3. Fixed offered load, 1000 msg/s for 10 s: latency percentiles.
run 3-rate1000 --rate 1000 --seconds 10 --no-micro
# 4. A deep queue (100k messages for an agency that never connects): the
#    replay run before and after queueing them on the same broker (is
#    throughput flat?), then restart times with them queued. Every message is
#    about a new subject, as in life, so the subject index grows with the
#    queue; 4-prequeue-1subject repeats it with every message about one
#    subject, which shows what the queue alone costs.
run 4-prequeue --mode replay --messages 20000 --prequeue "$deep" --restart --no-micro
run 4-prequeue-1subject --mode replay --messages 20000 --prequeue "$deep" --subjects 1 --no-micro
# 5. Idle agencies connected: broker memory, and a round trip beside them.
run 5-idle --idle-agencies "$idle" --messages 0 --no-micro
# 6. The auditor's subject query (a subject access request) on a log of
#    $audit_entries entries written through the broker's store code: warm,
#    cold (page cache dropped) and as the `dipxd audit --subject` command.
run 6-audit-query --entries "$audit_entries"

if command -v jq >/dev/null 2>&1; then
    echo
    echo "== summary (msg/s; ms; us per message; bytes per message; MiB)"
    echo "(disk/msg: data.mdb growth; written/msg: what the disk was asked to write)"
    printf '%-20s %8s %8s %8s %8s %8s %8s %8s %8s %8s %7s %5s\n' run accepted e2e p50 p99 \
        p99.9 brokerCPU clientCPU disk/msg written RSS load
    for f in "$out"/[1-5]-*.json; do
        [ -f "$f" ] || continue
        jq -r --arg n "$(basename "$f" .json)" '
            def r(m): if . == null then "-" else (. * m | floor) / m end;
            [$n, (.accepted_per_s | r(1)), (.e2e_per_s | r(1)), (.latency_ms.p50 | r(100)),
             (.latency_ms.p99 | r(100)), (.latency_ms.p999 | r(100)),
             (.broker_cpu_us_per_msg | r(1)), (.client_cpu_us_per_msg | r(1)),
             (.disk_bytes_per_msg | r(1)), (.device_written_bytes_per_msg | r(1)),
             (if .broker_rss_kb == null then null else .broker_rss_kb / 1024 end | r(1)),
             (.loadavg_1m_before | r(10))] | @tsv' "$f" |
            awk -F'\t' '{ printf "%-20s %8s %8s %8s %8s %8s %8s %8s %8s %8s %7s %5s\n", $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12 }'
    done
    for f in "$out"/4-prequeue*.json; do
        [ -f "$f" ] || continue
        jq -r --arg n "$(basename "$f" .json)" '
            def r(m): if . == null then "-" else (. * m | floor) / m end;
            "\($n): \(.prequeue.count) msgs in \(.prequeue.fill_s | r(10)) s, data.mdb \(.prequeue.data_mdb_bytes_queued | if . == null then null else . / 1048576 end | r(1)) MiB (\(.prequeue.queued_bytes_per_msg | r(1)) B/msg queued); end to end \(.prequeue.before.e2e_per_s | r(1)) msg/s before them, \(.e2e_per_s | r(1)) with them (x \(.prequeue.e2e_ratio | r(1000)))"' "$f"
        jq -r 'if .restart then "  restart to READY \(.restart.term_ready_s) s (SIGTERM), \(.restart.kill_ready_s) s (SIGKILL)" else empty end' "$f" || true
    done
    for f in "$out"/5-idle.json; do
        [ -f "$f" ] && jq -r '"idle: \(.idle.connected)/\(.idle.requested) connected in \(.idle.connect_s | . * 10 | floor / 10) s, broker RSS \(.idle.broker_rss_kb_before / 1024 | floor) -> \(.idle.broker_rss_kb_after / 1024 | floor) MiB (\(.idle.kb_per_connection | . * 10 | floor / 10) KiB each), broker CPU holding them \(.idle.broker_cpu_cores_holding | . * 1000 | floor / 1000) cores; round trip p50 \(.idle.roundtrip_ms_p50 | . * 100 | floor / 100) ms, max \(.idle.roundtrip_ms_max | . * 100 | floor / 100) ms"' "$f"
    done
    for f in "$out"/6-audit-query.json; do
        [ -f "$f" ] && jq -r '"audit: subject query on \(.log.entries) entries (\(.query_warm.records_mean | floor) records each): warm p50 \(.query_warm.p50_ms | . * 1000 | floor / 1000) ms, p99 \(.query_warm.p99_ms | . * 1000 | floor / 1000) ms; cold p50 \(.query_cold.p50_ms | . * 100 | floor / 100) ms, max \(.query_cold.max_ms | . * 100 | floor / 100) ms; dipxd audit --subject p50 \(.command.p50_ms | . * 10 | floor / 10) ms"' "$f"
    done
fi
exit $failed
