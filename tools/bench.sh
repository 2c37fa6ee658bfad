#!/usr/bin/env bash
# auth-host under load on loopback, measured the same way every time (`make bench`,
# `make bench DB=postgres`). Prints one table and writes it to target/bench/report-<db>.md.
#
# Each row: requests/s, latency p50 and p99 (wrk --latency), the server's CPU time per
# request (from /proc) and the load generator's (GNU time), at concurrency 1 and 64, for a
# fixed duration. The report also holds the server's peak RSS, how long it took to be ready,
# and this machine's signing bounds measured in the same run (openssl speed and aws-lc, on
# every core; and a server that only signs, driven as auth-host is): authorize at c=64 as a
# share of each, and its CPU per request against one signature's, for each permission-token
# algorithm (RS256, ES256, EdDSA).
set -euo pipefail
cd "$(dirname "$0")/.."

DB=${DB:-sqlite}
DURATION=${BENCH_DURATION:-10}
CONNECTIONS=${BENCH_CONNECTIONS:-"1 64"}
PORT=${BENCH_PORT:-18900}
OUT=target/bench
BIN=target/release/auth-host
BASE="http://127.0.0.1:$PORT"
REPORT="$OUT/report-$DB.md"

for tool in wrk curl openssl /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench: $tool is missing (make bench installs it)" >&2; exit 1; }
done

rm -rf "$OUT/data"
mkdir -p "$OUT/data"
PLUGIN_DIR=target/release
. tools/sample-server-env.sh
# The sample provider three times: in-process (`example`), in a worker process without the
# sandbox (`isolated`) and in a sandboxed one (`sandboxed`); then the providers that need no
# Rust: Cedar policies (`cedar`) and the example HTTP service (`http`, asked every time).
allow_isolated_samples
export ALLOWED_SERVICES="$ALLOWED_SERVICES;cedar:cedar_permissions;http:http_permissions"
cat >"$OUT/policies.cedar" <<'EOF'
permit (principal, action == Action::"read", resource);
permit (principal, action == Action::"write", resource)
  when { principal has email && principal.email like "*@bench.example" };
forbid (principal, action == Action::"admin", resource) unless { principal has username };
EOF
export AUTH_PLUGINS__CEDAR__POLICIES="$OUT/policies.cedar"
export AUTH_PLUGINS__CEDAR__ACTIONS='["read", "write", "admin"]'
HTTP_PORT=$((PORT + 1))
HTTP_SECRET="whsec_$(openssl rand -base64 24)"
printf '{"http": {"*": {"read": true, "write": false}}}' >"$OUT/http-permissions.json"
PROVIDER_SECRET="$HTTP_SECRET" target/verifiers-venv/bin/python examples/http-provider/provider.py \
  "$OUT/http-permissions.json" "$HTTP_PORT" >"$OUT/http-provider.log" 2>&1 &
HTTP_PID=$!
# Whatever ends the script stops the server running then ($PID, see sample-server-env.sh) and
# the example provider.
trap '[ -n "$PID" ] && kill $PID 2>/dev/null; kill $HTTP_PID 2>/dev/null || true' EXIT
# It says when it listens; one that cannot (the port taken, say by a provider left running
# with another secret) would answer nothing or every request 401, so the bench stops here.
until grep -q '^listening' "$OUT/http-provider.log"; do
  kill -0 "$HTTP_PID" 2>/dev/null || { echo "bench: the example HTTP provider did not start:" >&2; cat "$OUT/http-provider.log" >&2; exit 1; }
  sleep 0.05
done
export AUTH_PLUGINS__HTTP__URL="http://127.0.0.1:$HTTP_PORT/{service}"
export AUTH_PLUGINS__HTTP__SECRET="$HTTP_SECRET"
# The login benchmark is one client with up to 64 logins in flight at once.
export AUTH_MAX_UNFINISHED_LOGINS_PER_CLIENT=1000
case "$DB" in
  sqlite) unset DATABASE_URL ;;
  postgres)
    admin=${AUTH_BENCH_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
    psql -q "$admin" -c "DROP DATABASE IF EXISTS auth_host_bench WITH (FORCE)" -c "CREATE DATABASE auth_host_bench"
    export DATABASE_URL="${admin%/*}/auth_host_bench"
    # Replicas keep their signing keys in the database, sealed under this secret.
    export AUTH_KEY_SECRETS="bench-key-secret-$(openssl rand -hex 16)"
    ;;
  *) echo "bench: DB must be sqlite or postgres" >&2; exit 2 ;;
esac

# A fresh database holding test users, and a client token for one of them.
"$BIN" migrate >/dev/null
for i in $(seq 1 20); do
  "$BIN" users add --email "user$i@bench.example" --name "Bench User $i" >/dev/null
done
USERID=$("$BIN" users add --email "bench@bench.example" --name "Bench")
TOKEN=$("$BIN" token issue --userid "$USERID")

# Start, and time until it answers.
started=$(date +%s%N)
serve "$OUT/server.log"
ready_ms=$(( ($(date +%s%N) - started) / 1000000 ))

ticks=$(getconf CLK_TCK)
# The server's CPU time, with its plugin workers' (its child processes).
cpu_ticks() {
  local pids
  pids="$PID $(pgrep -P "$PID" | tr '\n' ' ')"
  for pid in $pids; do cat "/proc/$pid/stat" 2>/dev/null; done | awk '{t += $14 + $15} END {print t}'
}

cat >"$OUT/update.lua" <<EOF
wrk.method = "POST"
wrk.headers["auth-token"] = "$TOKEN"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.body = "username=bench_renamed"
EOF

# The load generator's CPU time (user + system, seconds), run as `client CMD…`: it shares the
# machine's cores with the server, so what it takes is not the server's to use.
client() {
  /usr/bin/time -f "%U %S" -o "$OUT/client-time" "$@"
}
client_us() { # requests: the client's last run, CPU µs per request
  awk -v n="$1" '{ if (n > 0) printf "%.1f", ($1 + $2) / n * 1e6; else print "-" }' "$OUT/client-time"
}

rows=()
# requests/s and CPU µs per request of each run, by "name|connections".
declare -A RPS CPU_US
run() {
  local name=$1 url=$2 script=${3:-}
  for c in $CONNECTIONS; do
    local threads=2
    [ "$c" -lt 2 ] && threads=1
    local before after out
    before=$(cpu_ticks)
    if [ -n "$script" ]; then
      out=$(client wrk -t"$threads" -c"$c" -d"${DURATION}s" --latency -s "$script" "$url")
    else
      out=$(client wrk -t"$threads" -c"$c" -d"${DURATION}s" --latency "$url")
    fi
    after=$(cpu_ticks)
    local rps p50 p99 requests errors cpu_us wrk_us
    rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out")
    p50=$(awk '$1 == "50%" {print $2}' <<<"$out")
    p99=$(awk '$1 == "99%" {print $2}' <<<"$out")
    requests=$(awk '/requests in/ {print $1}' <<<"$out")
    errors=$(awk '/Non-2xx or 3xx responses:/ {print $5}' <<<"$out")
    cpu_us=$(awk -v t=$((after - before)) -v hz="$ticks" -v n="$requests" \
      'BEGIN { if (n > 0) printf "%.1f", t / hz / n * 1e6; else print "-" }')
    wrk_us=$(client_us "$requests")
    rows+=("| $name | $c | $rps | $p50 | $p99 | $cpu_us | $wrk_us | ${errors:-0} |")
    RPS["$name|$c"]=$rps
    CPU_US["$name|$c"]=$cpu_us
    printf '%-34s c=%-3s %8s req/s  p50 %-9s p99 %-9s cpu/req %s µs (wrk %s µs)\n' "$name" "$c" "$rps" "$p50" "$p99" "$cpu_us" "$wrk_us"
  done
}

echo "auth-host bench: $DB, ${DURATION}s per run, ready in ${ready_ms} ms"
run "GET /auth/public-key" "$BASE/auth/public-key"
run "GET /auth/check (no token)" "$BASE/auth/check"
run "GET /auth/check (valid token)" "$BASE/auth/check?jwt=$TOKEN"
AUTHORIZE="GET /auth/authorize (sample provider)"
run "$AUTHORIZE" "$BASE/auth/authorize?service=example&jwt=$TOKEN"
run "GET /auth/authorize (sample provider, isolated)" "$BASE/auth/authorize?service=isolated&jwt=$TOKEN"
run "GET /auth/authorize (sample provider, isolated, sandboxed)" "$BASE/auth/authorize?service=sandboxed&jwt=$TOKEN"
run "GET /auth/authorize (Cedar policies, 3 actions)" "$BASE/auth/authorize?service=cedar&jwt=$TOKEN"
run "GET /auth/authorize (http_permissions, the Python example)" "$BASE/auth/authorize?service=http&jwt=$TOKEN"
run "POST /auth/update" "$BASE/auth/update" "$OUT/update.lua"

# A whole login (start, then callback: state, user refresh, hooks, client token) cannot be
# replayed by wrk: each needs a fresh single-use state. tools/login-bench drives it.
for c in $CONNECTIONS; do
  before=$(cpu_ticks)
  out=$(client target/release/login-bench "$BASE" "$c" "$DURATION")
  read -r lps p50 p99 logins errors <<<"$out"
  after=$(cpu_ticks)
  cpu_us=$(awk -v t=$((after - before)) -v hz="$ticks" -v n="$logins" \
    'BEGIN { if (n > 0) printf "%.1f", t / hz / n * 1e6; else print "-" }')
  rows+=("| development login, start + callback (logins/s) | $c | $lps | ${p50}ms | ${p99}ms | $cpu_us | $(client_us "$logins") | $errors |")
  printf '%-34s c=%-3s %8s logins/s  p50 %-9s p99 %-9s cpu/login %s µs\n' "dev login (start + callback)" "$c" "$lps" "${p50}ms" "${p99}ms" "$cpu_us"
done

rss_kb=$(awk '/^VmHWM:/ {print $2}' "/proc/$PID/status")
stop

# Permission tokens signed with ES256, then EdDSA (keys kept in the data directory).
for algorithm in ES256 EdDSA; do
  serve "$OUT/server-$algorithm.log" AUTH_PERMISSION_TOKEN_ALGORITHM=$algorithm
  run "$AUTHORIZE, $algorithm" "$BASE/auth/authorize?service=example&jwt=$TOKEN"
  stop
done

# The same server exporting every span to a collector (a sink that keeps nothing): what
# tracing costs when on. Off (the rows above) its spans are disabled callsites.
SINK_PORT=$((PORT + 2))
python3 tools/otlp-sink.py "$SINK_PORT" &
SINK_PID=$!
serve "$OUT/server-traced.log" OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$SINK_PORT" OTEL_TRACES_SAMPLER=always_on
run "$AUTHORIZE, traced (every span exported)" "$BASE/auth/authorize?service=example&jwt=$TOKEN"
stop
kill $SINK_PID 2>/dev/null || true

# The same server with permission tokens handed out again (permission_token_reuse_secs):
# authorize costs the plugin call, not a signature.
serve "$OUT/server-reuse.log" AUTH_PERMISSION_TOKEN_REUSE_SECS=30
run "GET /auth/authorize (sample provider, token reuse 30 s)" "$BASE/auth/authorize?service=example&jwt=$TOKEN"
stop

# A server that only signs, once per request, on auth-host's HTTP stack (tools/sign-speed
# serve, on the same port): the most any server signing per request reaches on this machine
# with wrk beside it. authorize is set against it below, beside the bare signing bounds.
ONLY_SIGNING="GET / (tools/sign-speed serve: only signing)"
for algorithm in RS256 ES256 EdDSA; do
  launch "$OUT/sign-speed-$algorithm.log" target/release/sign-speed serve "$PORT" "$algorithm"
  run "$ONLY_SIGNING, $algorithm" "$BASE/"
  stop
done

# A worker's start, with and without the sandbox: `plugins check` of one isolated alias (the
# host's own start included), the mean of 5.
check_ms() {
  local total=0 started
  for _ in 1 2 3 4 5; do
    started=$(date +%s%N)
    ALLOWED_SERVICES="w:sample_permission_provider" INSTALLED_EXTENSIONS="" \
      AUTH_PLUGINS__W__ISOLATION=process AUTH_PLUGINS__W__SANDBOX="$1" \
      "$BIN" plugins check >/dev/null
    total=$((total + $(date +%s%N) - started))
  done
  awk -v t="$total" 'BEGIN { printf "%.1f", t / 5 / 1e6 }'
}
check_off_ms=$(check_ms off)
check_sandboxed_ms=$(check_ms strict)

# The machine's signing bound, same run: signatures per second on one core, and with every
# core signing at once (openssl speed -multi), as the server's cores do under load.
signing_speed() { # extra openssl speed arguments…
  local speed
  speed=$(openssl speed "$@" -seconds 3 rsa2048 ecdsap256 ed25519 2>/dev/null)
  # `rsa 2048 bits … sign/s verify/s` (one core), `rsa 2048 bits … sign/s verify/s` (multi,
  # after `Got:` lines): the last line of each wins.
  awk '/^rsa 2048 bits/ {r = $(NF - 1); v = $NF}
       /256 bits ecdsa \(nistp256\)/ {e = $(NF - 1)}
       /253 bits EdDSA \(Ed25519\)/ {d = $(NF - 1)}
       END {printf "%.0f %.0f %.0f %.0f\n", r, v, e, d}' <<<"$speed"
}
read -r rsa_sign rsa_verify ecdsa_sign ed_sign < <(signing_speed)
cores=$(nproc)
read -r rsa_sign_all _ ecdsa_sign_all ed_sign_all < <(signing_speed -multi "$cores")
# The same with the library the server signs with (aws-lc, tools/sign-speed): where OpenSSL
# signs faster than aws-lc, this is the bound the server itself can reach.
read -r own_rsa_all own_ecdsa_all own_ed_all < <(target/release/sign-speed 3 "$cores")
[ -n "$own_ed_all" ] || { echo "bench: tools/sign-speed gave no figures" >&2; exit 1; }

# authorize at c=64 against the bounds of its algorithm: the share of all cores' signatures
# per second it reaches, and of the only-signing server's requests per second; its CPU per
# request against one signature's, and the only-signing server's.
bound_rows=()
cpu_rows=()
bound_row() { # algorithm, authorize's row, signatures/s all cores, one core, aws-lc's all cores
  local rps=${RPS["$2|64"]:-} cpu=${CPU_US["$2|64"]:-}
  local floor_rps=${RPS["$ONLY_SIGNING, $1|64"]:-} floor_cpu=${CPU_US["$ONLY_SIGNING, $1|64"]:-}
  [ -n "$rps" ] && [ -n "$floor_rps" ] || return 0
  bound_rows+=("$(awk -v l="$1" -v r="$rps" -v all="$3" -v own="$5" -v floor="$floor_rps" 'BEGIN {
    printf "| %s | %d | %d | %.1f%% | %d | %.1f%% | %d | %.1f%% |", l, r, all, 100 * r / all, own, 100 * r / own, floor, 100 * r / floor }')")
  cpu_rows+=("$(awk -v l="$1" -v c="$cpu" -v fc="$floor_cpu" -v one="$4" 'BEGIN {
    sig = 1e6 / one
    printf "| %s | %s | %s | %.1f | %.2f× | %.2f× |", l, c, fc, sig, c / sig, fc / sig }')")
}
bound_row RS256 "$AUTHORIZE" "$rsa_sign_all" "$rsa_sign" "$own_rsa_all"
bound_row ES256 "$AUTHORIZE, ES256" "$ecdsa_sign_all" "$ecdsa_sign" "$own_ecdsa_all"
bound_row EdDSA "$AUTHORIZE, EdDSA" "$ed_sign_all" "$ed_sign" "$own_ed_all"
{
  echo "# auth-host bench ($DB)"
  echo
  echo "$(date -u +%Y-%m-%dT%H:%MZ), $(nproc) cores, wrk on the same machine, ${DURATION}s per run,"
  echo "$(git rev-parse --short HEAD 2>/dev/null || echo '?'), release build."
  echo
  echo "| endpoint | connections | req/s | p50 | p99 | server CPU/request (µs) | load generator CPU/request (µs) | non-2xx |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "- ready to serve: ${ready_ms} ms after start (sample plugins, $DB)"
  echo "- peak RSS: $((rss_kb / 1024)) MB"
  echo "- \`plugins check\` of one isolated alias (auth-host's start, the worker's start and hello): ${check_off_ms} ms without the sandbox, ${check_sandboxed_ms} ms sandboxed (mean of 5)"
  echo "- signing bound (openssl speed): RSA-2048 sign ${rsa_sign}/s on 1 core, ${rsa_sign_all}/s on $cores (verify ${rsa_verify}/s on 1);"
  echo "  ECDSA P-256 sign ${ecdsa_sign}/s on 1, ${ecdsa_sign_all}/s on $cores; Ed25519 sign ${ed_sign}/s on 1, ${ed_sign_all}/s on $cores"
  echo "- signing bound (aws-lc, the server's signer, tools/sign-speed): RSA-2048 ${own_rsa_all}/s, ECDSA P-256 ${own_ecdsa_all}/s, Ed25519 ${own_ed_all}/s on $cores"
  echo
  echo "authorize at c=64 against the signing bounds of its permission-token algorithm: the"
  echo "signatures/s of all $cores cores signing and nothing else running (openssl speed -multi;"
  echo "aws-lc, the server's signer), and the requests/s of a server that only signs, with wrk"
  echo "beside it as beside auth-host (tools/sign-speed serve):"
  echo
  echo "| algorithm | authorize/s | bound: openssl (signatures/s) | share of it | bound: aws-lc (signatures/s) | share of it | only-signing server (req/s) | share of it |"
  echo "|---|---|---|---|---|---|---|---|"
  printf '%s\n' "${bound_rows[@]}"
  echo
  echo "CPU per request at c=64 against one signature's (openssl, 1 core):"
  echo
  echo "| algorithm | server CPU/authorize (µs) | only-signing server CPU/request (µs) | one signature (µs) | authorize ÷ signature | only-signing ÷ signature |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${cpu_rows[@]}"
} >"$REPORT"
echo
cat "$REPORT"
