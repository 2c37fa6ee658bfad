#!/usr/bin/env bash
# Two set-ups of `GET /auth/authorize` measured in alternation, so that what drifts on the
# machine (other load, heat, frequency) falls on both alike: A, B, A, B… each on a fresh
# server, 1 s of warm-up, then BENCH_DURATION (8) seconds of wrk at 64 connections. Prints each
# run and the means, and B as a share of A.
#
#   A_BIN, B_BIN          the auth-host binaries (default target/release/auth-host)
#   A_ENV, B_ENV          extra environment, NAME=value separated by spaces
#   A_SERVICE, B_SERVICE  the alias asked (default example)
#   ROUNDS                how many A, B pairs (default 3)
#
# e.g. tracing off against on (a collector that keeps nothing on port 18993):
#   python3 tools/otlp-sink.py 18993 &
#   B_ENV="OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:18993" tools/bench-compare.sh
# or the sandbox's cost: A_SERVICE=isolated B_SERVICE=sandboxed tools/bench-compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${BENCH_DURATION:-8}
ROUNDS=${ROUNDS:-3}
PORT=${BENCH_PORT:-18990}
BASE="http://127.0.0.1:$PORT"
OUT=target/bench-compare
A_BIN=${A_BIN:-target/release/auth-host}
B_BIN=${B_BIN:-target/release/auth-host}

rm -rf "$OUT" && mkdir -p "$OUT/data"
PLUGIN_DIR=target/release
. tools/sample-server-env.sh
allow_isolated_samples
"$A_BIN" migrate >/dev/null 2>&1
USERID=$("$A_BIN" users add --email "compare@bench.example" --name Compare 2>/dev/null)
TOKEN=$("$A_BIN" token issue --userid "$USERID" 2>/dev/null)

trap '[ -n "$PID" ] && kill $PID 2>/dev/null || true' EXIT
measure() { # binary, extra environment, service
  # shellcheck disable=SC2086 # the environment is NAME=value words
  BIN=$1 serve "$OUT/server.log" $2
  local url="$BASE/auth/authorize?service=$3&jwt=$TOKEN"
  wrk -t2 -c64 -d1s "$url" >/dev/null
  wrk -t2 -c64 -d"${DURATION}s" "$url" | awk '/^Requests\/sec:/ {printf "%.0f\n", $2}'
  stop
}

a_total=0 b_total=0
for round in $(seq 1 "$ROUNDS"); do
  a=$(measure "$A_BIN" "${A_ENV:-}" "${A_SERVICE:-example}")
  b=$(measure "$B_BIN" "${B_ENV:-}" "${B_SERVICE:-example}")
  echo "round $round: A $a req/s, B $b req/s"
  a_total=$((a_total + a)) b_total=$((b_total + b))
done
awk -v a="$a_total" -v b="$b_total" -v n="$ROUNDS" \
  'BEGIN { printf "mean: A %.0f req/s, B %.0f req/s; B is %.1f%% of A\n", a / n, b / n, 100 * b / a }'
