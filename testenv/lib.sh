# Shared by cluster.sh and node.sh (sourced): running components in the background, watching
# them, waiting for them, and picking free ports. The sourcing script sets $logs (where each
# component's log goes) and defines log().

pids=()
names=()
cmds=()

# start NAME CMD...: runs a component in the background with its log in $logs/NAME.log. File
# descriptor 9 (node.sh's machine-wide lock) is never handed to a component.
start() {
  local name=$1; shift
  "$@" >"$logs/$name.log" 2>&1 9>&- &
  pids+=($!)
  names+=("$name")
  cmds+=("$(printf '%q ' "$@")")
}

# restart NAME DOWN: kills the component outright (SIGKILL: a crash, nothing flushed), keeps
# it down for DOWN seconds, then starts it again with the same command line, its log
# appended. The fault tests ask for it (cluster.sh's restart requests).
restart() {
  local name=$1 down=$2 i
  for i in "${!names[@]}"; do
    [ "${names[$i]}" = "$name" ] || continue
    kill -KILL "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
    sleep "$down"
    echo "--- restarted by the fault tests ---" >>"$logs/$name.log"
    eval "${cmds[$i]}" '>>"$logs/$name.log" 2>&1 9>&- &'
    pids[i]=$!
    return 0
  done
  log "restart: no component named $name"
  return 1
}

# check_alive: exits (so the EXIT trap stops the rest) when a component has exited.
check_alive() {
  local i
  for i in "${!pids[@]}"; do
    if ! kill -0 "${pids[$i]}" 2>/dev/null; then
      log "${names[$i]} exited; last lines of $logs/${names[$i]}.log:"
      tail -n 20 "$logs/${names[$i]}.log" >&2 || true
      exit 1
    fi
  done
}

# wait_for WHAT SECONDS CMD...: retries CMD until it succeeds or the time is up.
wait_for() {
  local what=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    check_alive
    if [ $SECONDS -ge $deadline ]; then
      log "timed out after ${secs}s waiting for $what; logs in $logs"
      exit 1
    fi
    sleep 0.2
  done
}

# free_port VAR: sets VAR to a port nothing listens on, from a range clear of the ephemeral
# ports, and different from the ports already handed out.
used_ports=" "
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 12000))
    case "$used_ports" in *" $p "*) continue ;; esac
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      used_ports+="$p "
      printf -v "$1" '%s' "$p"
      return
    fi
  done
}
