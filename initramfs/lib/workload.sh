# --- the default workload: KTSTR_WORKLOAD (spin|stress-ng|hackbench) for KTSTR_DURATION_S,
# KTSTR_WORKERS workers. The scheduler is checked while it runs.
WL_PIDS=

start_workload() {
  : > /tmp/ktstr-workload.log
  case "$KTSTR_WORKLOAD" in
    spin)
      _i=0
      while [ "$_i" -lt "$KTSTR_WORKERS" ]; do
        sh -c 'while :; do :; done' &
        WL_PIDS="$WL_PIDS $!"
        _i=$((_i + 1))
      done
      ;;
    stress-ng)
      stress-ng --cpu "$KTSTR_WORKERS" --timeout "${KTSTR_DURATION_S}s" --metrics-brief \
        --yaml /tmp/ktstr-stress-ng.yaml > /tmp/ktstr-workload.log 2>&1 &
      WL_PIDS=$!
      ;;
    hackbench)
      sh -c 'while :; do hackbench --groups 2 --loops 50 || exit 1; done' \
        > /tmp/ktstr-workload.log 2>&1 &
      WL_PIDS=$!
      ;;
    payload)
      sh /ktstr/payload.sh > /tmp/ktstr-payload.out 2> /tmp/ktstr-payload.err < /dev/null &
      WL_PIDS=$!
      ;;
    none) ;;
  esac
  emit_event workload_started kind "$KTSTR_WORKLOAD" workers "$KTSTR_WORKERS" pids "$WL_PIDS"
}

# run_for SECONDS: wait while checking the scheduler every 100 ms; 1 if it went away
run_for() {
  _end=$(( $(cut -d. -f1 /proc/uptime) + $1 ))
  while [ "$(cut -d. -f1 /proc/uptime)" -lt "$_end" ]; do
    sched_check || return 1
    sleep 0.1
  done
  sched_check
}

# run_payload_to_end: wait (bounded) for the payload while checking the scheduler
run_payload_to_end() {
  _end=$(( $(cut -d. -f1 /proc/uptime) + KTSTR_PAYLOAD_TIMEOUT_S ))
  while kill -0 "$WL_PIDS" 2>/dev/null; do
    sched_check || return 1
    if [ "$(cut -d. -f1 /proc/uptime)" -ge "$_end" ]; then
      emit_event payload_timeout timeout_s "$KTSTR_PAYLOAD_TIMEOUT_S"
      kill -KILL "$WL_PIDS" 2>/dev/null
      break
    fi
    sleep 0.1
  done
  sched_check
}

stop_payload() {
  kill -KILL "$WL_PIDS" 2>/dev/null
  wait "$WL_PIDS"
  _status=$?
  emit_event payload_exit status "$_status"
  emit_blob payload_stdout /tmp/ktstr-payload.out
  emit_blob payload_stderr /tmp/ktstr-payload.err
  [ -f /tmp/ktstr-payload.yaml ] && emit_blob payload_yaml /tmp/ktstr-payload.yaml
  return 0
}

stop_workload() {
  if [ "$KTSTR_WORKLOAD" = payload ]; then
    stop_payload
    return 0
  fi
  _status=0
  for _p in $WL_PIDS; do
    if [ "$KTSTR_WORKLOAD" = stress-ng ]; then
      # stress-ng ends by itself after --timeout; a bounded wait, then the signal
      _deadline=$(( $(cut -d. -f1 /proc/uptime) + 30 ))
      while kill -0 "$_p" 2>/dev/null && [ "$(cut -d. -f1 /proc/uptime)" -lt "$_deadline" ]; do
        sleep 0.1
      done
    fi
    kill -TERM "$_p" 2>/dev/null
    wait "$_p"
    _c=$?
    [ "$KTSTR_WORKLOAD" = spin ] || _status=$_c
  done
  emit_event workload_stopped kind "$KTSTR_WORKLOAD" status "$_status"
  [ -s /tmp/ktstr-workload.log ] && emit_blob workload_log /tmp/ktstr-workload.log
  [ -f /tmp/ktstr-stress-ng.yaml ] && emit_blob stress_ng_yaml /tmp/ktstr-stress-ng.yaml
  return 0
}
