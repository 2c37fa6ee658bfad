#!/usr/bin/env bash
# `make deny` (run by CI): `cargo deny check` (advisories, bans, licences, sources; deny.toml)
# against the RustSec advisory database snapshot, with no network.
#
# The snapshot (a git bundle, $ADVISORY_BUNDLE) is cloned, and cargo-deny fetches the
# advisory database's usual URL from that clone (git's `insteadOf`), so the check runs as it
# does against the live database. Then the proof that the check can fail: the same tree
# against a copy of the snapshot holding one made-up advisory for a crate auth-host uses
# must fail, naming that advisory.
set -euo pipefail
cd "$(dirname "$0")/.."

# Beside the checkout; /work/shared where the checkout was cloned elsewhere.
if [ -z "${ADVISORY_BUNDLE:-}" ]; then
  for candidate in ../shared/advisory-db.bundle /work/shared/advisory-db.bundle; do
    [ -f "$candidate" ] && ADVISORY_BUNDLE=$candidate && break
  done
fi
ADVISORY_BUNDLE=${ADVISORY_BUNDLE:-../shared/advisory-db.bundle}
ADVISORY_URL=https://github.com/RustSec/advisory-db
OUT=target/deny
rm -rf "$OUT"
mkdir -p "$OUT"

if [ ! -f "$ADVISORY_BUNDLE" ]; then
  echo "deny: FAILED: no advisory snapshot at $ADVISORY_BUNDLE (ADVISORY_BUNDLE=… names another)" >&2
  exit 1
fi
git -c init.defaultBranch=main clone --quiet "$ADVISORY_BUNDLE" "$OUT/snapshot"
snapshot_date=$(git -C "$OUT/snapshot" log -1 --format=%cs)

# cargo deny, with the advisory database fetched from the git repository $1.
deny_against() { # repository, log file
  GIT_CONFIG_COUNT=1 \
    GIT_CONFIG_KEY_0="url.file://$PWD/$1.insteadOf" GIT_CONFIG_VALUE_0="$ADVISORY_URL" \
    AUTH_ADVISORY_DBS="$PWD/$1-dbs" \
    cargo deny --color never check >"$2" 2>&1
}

status=0
deny_against "$OUT/snapshot" "$OUT/check.log" || status=$?
grep -E '^error\[' "$OUT/check.log" || true
echo "deny: $(grep -c '^warning\[duplicate\]' "$OUT/check.log" || true) crates in two versions or more (warned, not refused)"
if [ "$status" != 0 ]; then
  cat "$OUT/check.log"
  echo "deny: FAILED against the advisory snapshot of $snapshot_date (log: $OUT/check.log)"
  exit 1
fi

# A made-up advisory for a crate in the tree, every version affected.
git -c init.defaultBranch=main clone --quiet "$OUT/snapshot" "$OUT/tampered"
mkdir -p "$OUT/tampered/crates/base64"
cat >"$OUT/tampered/crates/base64/RUSTSEC-2099-0001.md" <<'EOF'
```toml
[advisory]
id = "RUSTSEC-2099-0001"
package = "base64"
date = "2099-01-01"
title = "A made-up advisory: make deny must fail on it"
url = "https://example.invalid/RUSTSEC-2099-0001"
categories = ["memory-corruption"]

[versions]
patched = []
```

# A made-up advisory

Written by tools/deny.sh into a copy of the snapshot, to show the check fails on a new advisory.
EOF
git -C "$OUT/tampered" add -A
git -C "$OUT/tampered" -c user.name=deny -c user.email=deny@localhost commit --quiet -m "made-up advisory"
if deny_against "$OUT/tampered" "$OUT/tampered.log"; then
  echo "deny: FAILED: a new advisory against base64 did not fail the check (log: $OUT/tampered.log)"
  exit 1
fi
if ! grep -q 'RUSTSEC-2099-0001' "$OUT/tampered.log"; then
  cat "$OUT/tampered.log"
  echo "deny: FAILED: the check failed, but not on the made-up advisory (log: $OUT/tampered.log)"
  exit 1
fi
echo "deny: passed against the advisory snapshot of $snapshot_date; a made-up advisory (RUSTSEC-2099-0001, base64) fails it"
