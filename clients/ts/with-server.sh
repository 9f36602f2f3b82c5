#!/usr/bin/env bash
# with-server.sh BINARY COMMAND...: starts the roomcast server BINARY on a free
# loopback port with a temp data dir, runs COMMAND with ROOMCAST_SERVER set to
# its URL (WITH_SERVER_TIMEOUT seconds at most, 60 by default), stops the server
# and exits with COMMAND's status.
set -euo pipefail
bin=$1; shift
data=$(mktemp -d)
log="$data/server.log"
"$bin" serve --addr 127.0.0.1:0 --data "$data/store" --log-format json >"$log" 2>&1 &
pid=$!
stop() {
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$data"
}
trap stop EXIT
url=
for _ in $(seq 300); do
  url=$(grep -o 'listening on http://[^ ]*' "$log" | head -n1 | cut -d' ' -f3 || true)
  [ -n "$url" ] && break
  kill -0 "$pid" 2>/dev/null || { echo "with-server.sh: the server exited:"; cat "$log"; exit 1; }
  sleep 0.1
done
[ -n "$url" ] || { echo "with-server.sh: the server did not start within 30 s:"; cat "$log"; exit 1; }
status=0
ROOMCAST_SERVER=$url timeout "${WITH_SERVER_TIMEOUT:-60}" "$@" || status=$?
[ "$status" -eq 0 ] || { echo "with-server.sh: '$*' failed ($status); server log:"; tail -n 50 "$log"; }
exit "$status"
