#!/usr/bin/env bash
# Records real workloads on this Linux machine and prices every scheme on
# each (issue: "which scheme for my workload?"). As root, with tracefs.
#
#   bash ci/workloads.sh [OUT_DIR]        (default target/workloads)
#
# Workloads, ~10 s each: idle, a parallel Rust build of the crate itself
# (cargo build -j2 --release --examples into an empty target dir), the pipe ping-pong of
# benches/context_switch.rs, hackbench (rt-tests), nginx under wrk on
# loopback, PostgreSQL under pgbench on loopback. Each gets OUT/NAME.trace,
# OUT/NAME.txt (compare --trace's tables) and a window of its first events
# in OUT/NAME.trace.gz (what tests/traces keeps). The recorder's own cost:
# the ping-pong's and hackbench's throughput without and with recording,
# in one run, in OUT/overhead.txt. A workload whose tool is missing is
# installed from Debian, or skipped with a printed SKIP: line.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-target/workloads}
SECS=${LAZYMM_WORKLOAD_SECS:-10}
WINDOW=${LAZYMM_WINDOW_EVENTS:-20000}
mkdir -p "$OUT"
cargo build --release --example record --example compare || exit 1
REC=target/release/examples/record
CMP=target/release/examples/compare

if ! $REC -o "$OUT/probe.trace" --seconds 0.1 > "$OUT/probe.txt"; then
    cat "$OUT/probe.txt"
    echo "SKIP: ci/workloads.sh: the recorder cannot run here (above)"
    exit 0
fi

need() { # need TOOL PACKAGE
    command -v "$1" > /dev/null && return 0
    apt-get install -y "$2" > /dev/null 2>&1
    command -v "$1" > /dev/null || { echo "SKIP: $1 (Debian $2) not installable here"; return 1; }
}

price() { # price NAME
    $CMP --trace "$OUT/$1.trace" > "$OUT/$1.txt" 2> "$OUT/$1.err" || { cat "$OUT/$1.err"; return 1; }
    $REC window "$OUT/$1.trace" "$OUT/$1.trace.gz" "$WINDOW"
    sed -n '1,8p' "$OUT/$1.txt"
    grep -E '^(\| [a-z_]+ \||winner)' "$OUT/$1.txt"
}

echo "== idle"
$REC -o "$OUT/idle.trace" --seconds "$SECS" && price idle

echo "== cargo-build"
rm -rf /tmp/lazymm-build-target
$REC -o "$OUT/cargo-build.trace" -- env CARGO_TARGET_DIR=/tmp/lazymm-build-target \
    cargo build -j2 --release --examples --quiet && price cargo-build

echo "== pingpong"
{
    echo "pingpong without recording: $($REC __workload pingpong "$SECS")"
    $REC -o "$OUT/pingpong.trace" -- $REC __workload pingpong "$SECS" | sed 's/^/pingpong with recording: /'
} | tee "$OUT/overhead.txt"
price pingpong

if need hackbench rt-tests; then
    echo "== hackbench"
    HB=(hackbench -g 4 -f 10 -l 20000)
    {
        echo "hackbench without recording: $("${HB[@]}" | grep Time)"
        $REC -o "$OUT/hackbench.trace" -- "${HB[@]}" | grep -E 'Time|record' | sed 's/^/hackbench with recording: /'
    } | tee -a "$OUT/overhead.txt"
    price hackbench
fi

if need nginx nginx && need wrk wrk; then
    echo "== nginx"
    mkdir -p /tmp/lazymm-nginx
    cat > /tmp/lazymm-nginx/nginx.conf <<EOF
worker_processes 2;
pid /tmp/lazymm-nginx/nginx.pid;
error_log /tmp/lazymm-nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    server { listen 127.0.0.1:18080; location / { return 200 "lazymm\n"; } }
}
EOF
    nginx -c /tmp/lazymm-nginx/nginx.conf
    $REC -o "$OUT/nginx.trace" -- wrk -t2 -c32 -d"${SECS}s" http://127.0.0.1:18080/ | tail -3
    nginx -c /tmp/lazymm-nginx/nginx.conf -s stop
    price nginx
fi

if need pgbench postgresql-client && command -v initdb > /dev/null; then
    echo "== postgres"
    id lazymm-pg > /dev/null 2>&1 || useradd -r -m lazymm-pg
    PGD=/tmp/lazymm-pgdata
    rm -rf "$PGD" && mkdir -p "$PGD" && chown lazymm-pg "$PGD"
    as_pg() { runuser -u lazymm-pg -- "$@"; }
    as_pg initdb -D "$PGD" > /dev/null &&
        as_pg pg_ctl -D "$PGD" -o "-p 15432 -k /tmp" -l "$PGD/log" -w start > /dev/null &&
        as_pg pgbench -h /tmp -p 15432 -i -s 4 postgres > /dev/null 2>&1 &&
        $REC -o "$OUT/postgres.trace" -- runuser -u lazymm-pg -- \
            pgbench -h /tmp -p 15432 -c 8 -j 2 -T "$SECS" postgres | grep -E 'tps|record'
    as_pg pg_ctl -D "$PGD" -m fast stop > /dev/null
    [ -f "$OUT/postgres.trace" ] && price postgres
fi
echo "results in $OUT"
