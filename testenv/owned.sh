#!/usr/bin/env bash
# Usage: testenv/owned.sh OWNER_PID COMMAND [ARGS...]
# Runs COMMAND until it exits, this script is told to stop (SIGTERM or SIGINT), or the
# process OWNER_PID exits; then stops COMMAND with SIGTERM. Tests run the operator under it
# so that no operator outlives the test binary that started it.
set -u
owner=$1
shift
"$@" &
child=$!
stop() {
  kill -TERM "$child" 2>/dev/null
  wait "$child"
  exit
}
trap stop TERM INT
while kill -0 "$owner" 2>/dev/null && kill -0 "$child" 2>/dev/null; do
  sleep 0.5 &
  wait $!
done
stop
