# Sourced by tools/bench.sh, tools/bench-compare.sh and tools/fuzz.sh: the environment of a
# local auth-host with the sample plugins and the development login, listening on
# 127.0.0.1:$PORT with its data in $OUT/data and its plugins in $PLUGIN_DIR (the build
# output); and `serve`/`stop` to run $BIN with it (`launch` for another server on the port).
export AUTH_DATA_DIR="$OUT/data"
export AUTH_PLUGIN_DIR="$PLUGIN_DIR"
export AUTH_LISTEN="127.0.0.1:$PORT"
export EXTERNAL_ADDRESS="http://127.0.0.1:$PORT"
export ALLOWED_SERVICES="example:sample_permission_provider"
export INSTALLED_EXTENSIONS="sample_extension"
export AUTH_DEV_LOGIN=true
export RUST_LOG=warn

# The sample provider also in a worker process without the sandbox (`isolated`) and in a
# sandboxed one (`sandboxed`), beside the in-process `example`.
allow_isolated_samples() {
  ALLOWED_SERVICES="$ALLOWED_SERVICES;isolated:sample_permission_provider;sandboxed:sample_permission_provider"
  export AUTH_PLUGINS__ISOLATED__ISOLATION=process AUTH_PLUGINS__ISOLATED__SANDBOX=off
  export AUTH_PLUGINS__SANDBOXED__ISOLATION=process AUTH_PLUGINS__SANDBOXED__SANDBOX=strict
}

# Starts the command given, logging to $1, and waits until 127.0.0.1:$PORT answers
# /auth/health; a command that dies or stays silent for 30 s ends the script, showing its
# log. Its pid is in $PID.
PID=
launch() { # log file, command…
  local log=$1 deadline=$((SECONDS + 30))
  shift
  "$@" 2>"$log" &
  PID=$!
  until curl -sf "http://127.0.0.1:$PORT/auth/health" >/dev/null; do
    if ! kill -0 "$PID" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      echo "the server did not come up; its log:" >&2
      cat "$log" >&2
      exit 1
    fi
    sleep 0.002
  done
}
# Starts $BIN serve with the extra environment given (NAME=value…), as `launch` does.
serve() { # log file, NAME=value…
  local log=$1
  shift
  launch "$log" env "$@" "$BIN" serve
}
stop() {
  kill "$PID"
  wait "$PID" 2>/dev/null || true
  PID=
}
