#!/usr/bin/env bash
# `make image`: the OCI image `auth-host:<version>`, built FROM scratch.
#
# No image registry is reachable from where auth-host is built, and a distribution base would
# bring a shell and a package manager the service never uses: the root file system holds the
# release binary, the bundled plugins, the shared libraries they load (glibc: plugins are
# opened with dlopen, so no static musl binary) and a user, nothing else — no shell. It is
# packed as a tarball and imported (`podman import`, or `docker import` where docker is what
# the machine has) with the image's configuration.
#
# Runs as uid 10001; /data (keys, SQLite) and /plugins (operators' plugins) are volumes. The
# bundled plugins live outside the volume, in $BUNDLED_DIR, searched after /plugins: mounting an
# empty directory on /plugins keeps them, and a plugin of the same name there replaces one; listens on 0.0.0.0:8000; works with --read-only (the
# plugin copies go to /tmp, a tmpfs under --read-only).
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINE=${IMAGE_ENGINE:-$(command -v podman >/dev/null && echo podman || echo docker)}
VERSION=$(awk -F'"' '/^version = / {print $2; exit}' host/Cargo.toml)
REVISION=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
TAG=${IMAGE_TAG:-auth-host:$VERSION}
BUNDLED="sample_permission_provider sample_extension email_allowlist static_permissions webhook http_permissions cedar_permissions"
OUT=target/image
ROOT=$OUT/rootfs
BUNDLED_DIR=/usr/local/lib/auth-host/plugins

rm -rf "$OUT"
mkdir -p "$ROOT"/usr/local/bin "$ROOT$BUNDLED_DIR" "$ROOT"/plugins "$ROOT"/data "$ROOT"/tmp "$ROOT"/etc
# Debug information is for the build machine; the image keeps what runs.
strip -o "$ROOT/usr/local/bin/auth-host" target/release/auth-host
for plugin in $BUNDLED; do
  strip -o "$ROOT$BUNDLED_DIR/lib$plugin.so" "target/release/lib$plugin.so"
done

# The shared libraries the binary and the plugins load, at the paths the loader looks in.
libraries() {
  ldd "$1" | awk '/=> \// {print $3} /^\t\/[^ ]+ \(/ {print $1}'
}
{
  libraries target/release/auth-host
  for plugin in $BUNDLED; do libraries "target/release/lib$plugin.so"; done
} | sort -u | while read -r library; do
  mkdir -p "$ROOT$(dirname "$library")"
  cp -L "$library" "$ROOT$library"
done

cat >"$ROOT/etc/passwd" <<EOF
root:x:0:0:root:/nonexistent:/nonexistent
auth-host:x:10001:10001:auth-host:/data:/nonexistent
EOF
cat >"$ROOT/etc/group" <<EOF
root:x:0:
auth-host:x:10001:
EOF
chmod 1777 "$ROOT/tmp"
chown -R 10001:10001 "$ROOT/data" "$ROOT/plugins"
chmod 0700 "$ROOT/data"

tar -C "$ROOT" --numeric-owner --sort=name -cf "$OUT/rootfs.tar" .
"$ENGINE" import \
  --change 'USER 10001:10001' \
  --change 'WORKDIR /data' \
  --change 'EXPOSE 8000' \
  --change 'VOLUME ["/data", "/plugins"]' \
  --change 'ENV AUTH_LISTEN=0.0.0.0:8000' \
  --change 'ENV AUTH_DATA_DIR=/data' \
  --change "ENV AUTH_PLUGIN_DIR=/plugins:$BUNDLED_DIR" \
  --change 'ENTRYPOINT ["/usr/local/bin/auth-host"]' \
  --change 'CMD ["serve"]' \
  --change "LABEL org.opencontainers.image.title=auth-host" \
  --change "LABEL org.opencontainers.image.version=$VERSION" \
  --change "LABEL org.opencontainers.image.revision=$REVISION" \
  --change "LABEL org.opencontainers.image.source=https://github.com/auth-host/auth-host" \
  --change "LABEL org.opencontainers.image.licenses=Apache-2.0" \
  "$OUT/rootfs.tar" "$TAG" >/dev/null
size=$(du -sb "$ROOT" | awk '{printf "%.1f", $1 / 1e6}')
echo "image $TAG: $size MB ($(find "$ROOT" -type f | wc -l) files), revision $REVISION"
