# Sourced by tools/bench.sh and tools/fuzz.sh: the environment of a local auth-host with the
# sample plugins and the development login, listening on 127.0.0.1:$PORT with its data in
# $OUT/data and its plugins in $PLUGIN_DIR (the build output).
export AUTH_DATA_DIR="$OUT/data"
export AUTH_PLUGIN_DIR="$PLUGIN_DIR"
export AUTH_LISTEN="127.0.0.1:$PORT"
export EXTERNAL_ADDRESS="http://127.0.0.1:$PORT"
export ALLOWED_SERVICES="example:sample_permission_provider"
export INSTALLED_EXTENSIONS="sample_extension"
export AUTH_DEV_LOGIN=true
export RUST_LOG=warn
