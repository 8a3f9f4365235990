#!/usr/bin/env bash
# Usage: testenv/owned.sh OWNER_PID COMMAND [ARGS...]
# Runs COMMAND until it exits, this script is told to stop (SIGTERM or SIGINT), or the
# process OWNER_PID exits; then stops COMMAND (SIGTERM, then SIGKILL after 10 s). Tests run the operator under it
# so that no operator outlives the test binary that started it.
set -u
owner=$1
shift
"$@" &
child=$!
# SIGTERM first, as Kubernetes does; SIGKILL after 10 s, so nothing hangs on a cluster that
# is already gone.
stop() {
  kill -TERM "$child" 2>/dev/null
  for _ in $(seq 1 100); do
    kill -0 "$child" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$child" 2>/dev/null
  wait "$child" 2>/dev/null
  exit 0
}
trap stop TERM INT
while kill -0 "$owner" 2>/dev/null && kill -0 "$child" 2>/dev/null; do
  sleep 0.5 &
  wait $!
done
stop
