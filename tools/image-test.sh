#!/usr/bin/env bash
# `make image-test`: the image as an operator runs it (tools/image.sh builds it). Read-only,
# as uid 10001, with /data and /plugins mounted and a configuration file:
# - it answers /auth/health (`auth-host health` inside, no curl there);
# - a token from `auth-host token issue` run in the container authenticates;
# - /plugins mounted empty: the bundled plugins are still found;
# - a provider .so copied into /plugins and named in the configuration answers
#   /auth/authorize after `kill --signal HUP`;
# - on PostgreSQL (a SQLAlchemy URL), with keys in the database, it serves;
# - with the old image's environment unchanged (PRIVATE_KEY/PUBLIC_KEY, GOOGLE_KEY/SECRET,
#   EXTERNAL_ADDRESS, ALLOWED_SERVICES, INSTALLED_EXTENSIONS, a relative sqlite:/// URL) it
#   serves that key, offers Google, and takes a token minted as the old service did;
# - `stop` ends it with exit 0 inside the drain;
# - the image is within its size budget (40 MB).
# Host network (the container engine's own networks are not needed); explicit limits, since
# the machine's sandbox cannot raise them.
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINE=${IMAGE_ENGINE:-$(command -v podman >/dev/null && echo podman || echo docker)}
VERSION=$(awk -F'"' '/^version = / {print $2; exit}' host/Cargo.toml)
TAG=${IMAGE_TAG:-auth-host:$VERSION}
PORT=${IMAGE_TEST_PORT:-18960}
BASE="http://127.0.0.1:$PORT"
OUT=target/image-test
RUN=("$ENGINE")
[ "$ENGINE" = podman ] && RUN+=(--runtime runc)
NAME=auth-host-image-test-$$
# PyJWT, to mint a token as the old service did (`make verifiers`).
VERIFIERS=target/verifiers-venv/bin/python

rm -rf "$OUT"
mkdir -p "$OUT/data" "$OUT/plugins" "$OUT/config"
cat >"$OUT/config/auth-host.toml" <<EOF
allowed_services = "example:sample_permission_provider"
EOF
chown -R 10001:10001 "$OUT/data" "$OUT/plugins"

failures=()
# One at a time: podman removes none of the list when one of them is already gone.
cleanup() {
  for name in "$NAME" "$NAME-pg" "$NAME-old"; do
    "${RUN[@]}" rm -f "$name" >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT

start() { # name, extra arguments…
  local name=$1
  shift
  "${RUN[@]}" run -d --name "$name" --read-only --network host \
    --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 \
    -e AUTH_LISTEN="127.0.0.1:$PORT" -e AUTH_PLUGIN_ISOLATION=process \
    "$@" >/dev/null
}

wait_healthy() { # name
  for _ in $(seq 1 100); do
    "${RUN[@]}" exec "$1" /usr/local/bin/auth-host health --url "$BASE" 2>/dev/null && return 0
    sleep 0.1
  done
  "${RUN[@]}" logs "$1" 2>&1 | tail -20
  return 1
}

in_container() { "${RUN[@]}" exec "$NAME" /usr/local/bin/auth-host "$@"; }

# SQLite in /data, plugins in /plugins, the configuration read-only.
start "$NAME" \
  -v "$PWD/$OUT/data:/data" -v "$PWD/$OUT/plugins:/plugins" -v "$PWD/$OUT/config:/config:ro" \
  -e AUTH_SHUTDOWN_DELAY_MS=1000 \
  "$TAG" --config /config/auth-host.toml serve
wait_healthy "$NAME" || failures+=("the container never became healthy")
user=$(in_container users add --email ada@example.com)
token=$(in_container token issue --userid "$user")
grep -q '"authenticated":true' <<<"$(curl -s "$BASE/auth/check?jwt=$token")" ||
  failures+=("a token issued in the container does not authenticate")
grep -q '"token"' <<<"$(curl -s "$BASE/auth/authorize?service=example&jwt=$token")" ||
  failures+=("a bundled provider is not found with an empty /plugins mounted")
[ "$("${RUN[@]}" exec "$NAME" /usr/local/bin/auth-host --version | grep -c commit)" = 1 ] ||
  failures+=("--version names no commit")
# The dependency tree cargo auditable recorded, read from the image's binary as scanners do.
"${RUN[@]}" cp "$NAME:/usr/local/bin/auth-host" "$OUT/auth-host"
objcopy --dump-section .dep-v0="$OUT/dep-v0" "$OUT/auth-host" 2>/dev/null || true
recorded=$(python3 -c 'import json, sys, zlib
tree = json.loads(zlib.decompress(open(sys.argv[1], "rb").read()))
print(" ".join(sorted({p["name"] for p in tree["packages"]})))' "$OUT/dep-v0" 2>/dev/null || true)
for crate in auth-host hyper abi_stable jsonwebtoken; do
  grep -qw -- "$crate" <<<"$recorded" ||
    failures+=("the image's binary does not record its dependency $crate (cargo auditable)")
done
[ "$("${RUN[@]}" inspect "$NAME" --format '{{.Config.User}}')" = "10001:10001" ] ||
  failures+=("the container does not run as 10001")

# An operator's provider, dropped in and named, after SIGHUP.
strip -o "$OUT/plugins/libtest_provider.so" target/release/libtest_provider.so
chown 10001:10001 "$OUT/plugins/libtest_provider.so"
cat >"$OUT/config/auth-host.toml" <<EOF
allowed_services = "example:sample_permission_provider;extra:test_provider"
EOF
"${RUN[@]}" kill --signal HUP "$NAME" >/dev/null
answered=""
for _ in $(seq 1 50); do
  answered=$(curl -s "$BASE/auth/authorize?service=extra&jwt=$token")
  grep -q '"token"' <<<"$answered" && break
  sleep 0.1
done
grep -q '"token"' <<<"$answered" || failures+=("the dropped-in provider does not answer after SIGHUP: $answered")

# Stopped: the drain, then exit 0.
stopped=$(date +%s%N)
"${RUN[@]}" stop -t 20 "$NAME" >/dev/null
stop_ms=$(( ($(date +%s%N) - stopped) / 1000000 ))
code=$("${RUN[@]}" inspect "$NAME" --format '{{.State.ExitCode}}')
[ "$code" = 0 ] || failures+=("exit status $code after stop")
[ "$stop_ms" -lt 15000 ] || failures+=("stop took ${stop_ms} ms (killed, not drained)")

# PostgreSQL through the old service's SQLAlchemy URL, keys sealed in the database.
admin=${AUTH_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
db=auth_host_image_test
psql -q "$admin" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db"
rest=${admin#postgres://}
start "$NAME-pg" \
  -e DATABASE_URL="postgresql+psycopg2://${rest%/*}/$db" \
  -e AUTH_KEY_SECRETS="image-test-key-secret-0123456789abcdef0123" \
  -e ALLOWED_SERVICES=example:sample_permission_provider \
  "$TAG"
wait_healthy "$NAME-pg" || failures+=("the container on PostgreSQL never became healthy")
# Read the whole log first: `logs | grep -q` under pipefail fails when grep stops reading early.
pg_log=$("${RUN[@]}" logs "$NAME-pg" 2>&1)
grep -q 'PostgreSQL postgres://' <<<"$pg_log" ||
  failures+=("the container on PostgreSQL did not log its database")

"${RUN[@]}" rm -f "$NAME-pg" >/dev/null

# The old image's environment, unchanged. `sqlite:///old.db` is relative to the working
# directory, /data, as SQLAlchemy reads it.
mkdir -p "$OUT/old-data"
chown 10001:10001 "$OUT/old-data"
openssl genrsa -out "$OUT/old-private.pem" 2048 2>/dev/null
openssl rsa -in "$OUT/old-private.pem" -pubout -out "$OUT/old-public.pem" 2>/dev/null
private_key=$(cat "$OUT/old-private.pem")
public_key=$(cat "$OUT/old-public.pem")
old_env=(
  -e PRIVATE_KEY="$private_key" -e PUBLIC_KEY="$public_key"
  -e GOOGLE_KEY=image-test-client-id -e GOOGLE_SECRET=image-test-client-secret
  -e EXTERNAL_ADDRESS="http://127.0.0.1:$PORT" -e DATABASE_URL=sqlite:///old.db
  -e ALLOWED_SERVICES=example:sample_permission_provider -e INSTALLED_EXTENSIONS=sample_extension
)
start "$NAME-old" -v "$PWD/$OUT/old-data:/data" "${old_env[@]}" "$TAG"
wait_healthy "$NAME-old" || failures+=("the container with the old environment never became healthy")
[ -f "$OUT/old-data/old.db" ] || failures+=("sqlite:///old.db was not /data/old.db")
[ "$(curl -s "$BASE/auth/public-key")" = "$public_key" ] ||
  failures+=("/auth/public-key is not the PUBLIC_KEY given")
grep -q '"google"' <<<"$(curl -s "$BASE/auth/check")" ||
  failures+=("GOOGLE_KEY/GOOGLE_SECRET did not offer the Google login")
old_user=$("${RUN[@]}" exec "${old_env[@]}" "$NAME-old" /usr/local/bin/auth-host users add --email old@example.com)
printf '%s' "$private_key" >"$OUT/old-key-text"
legacy=$("$VERIFIERS" tools/mint_legacy_token.py "$OUT/old-key-text" \
  "{\"userid\": \"$old_user\", \"exp\": $(($(date +%s) + 3600))}")
grep -q '"authenticated":true' <<<"$(curl -s "$BASE/auth/check?jwt=$legacy")" ||
  failures+=("a token minted as the old service did is not accepted")

size=$("${RUN[@]}" image inspect "$TAG" --format '{{.Size}}')
layers=$("${RUN[@]}" image inspect "$TAG" --format '{{len .RootFS.Layers}}')
# The size operators pull and store (uncompressed, as the engine reports it) stays within the
# budget; a dependency or build setting that outgrows it fails here rather than unnoticed.
IMAGE_BUDGET_MB=${IMAGE_BUDGET_MB:-40}
[ "$size" -le $((IMAGE_BUDGET_MB * 1000000)) ] ||
  failures+=("the image is $((size / 1000000)) MB, over its budget of $IMAGE_BUDGET_MB MB")
echo "image-test: $TAG, $((size / 1000000)) MB in $layers layer(s); stop in ${stop_ms} ms"
if [ ${#failures[@]} -gt 0 ]; then
  printf 'image-test: FAILED: %s\n' "${failures[@]}"
  exit 1
fi
echo "image-test: passed"
