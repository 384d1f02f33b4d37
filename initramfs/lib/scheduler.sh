# --- the scheduler under test ----------------------------------------------------------
# Parameters (from /ktstr/params.sh): KTSTR_SCHED_KIND (eevdf|binary|builtin),
# KTSTR_SCHED_BIN, KTSTR_CGROUP_PARENT, KTSTR_ATTACH_TIMEOUT_S, KTSTR_STOP_TIMEOUT_S.
# Files: /ktstr/sched_args (one argument per line), /ktstr/sysctls ("path value" lines),
# /ktstr/enable.sh and /ktstr/disable.sh (kernel-builtin schedulers).
SCX=/sys/kernel/sched_ext
SCHED_LOG=/tmp/ktstr-sched.log
SCHED_PID=

scx_state() { cat "$SCX/state" 2>/dev/null || echo none; }
scx_ops() { cat "$SCX/root/ops" 2>/dev/null; }
scx_seq() { cat "$SCX/enable_seq" 2>/dev/null || echo 0; }

apply_sysctls() {
  [ -f /ktstr/sysctls ] || return 0
  while read -r _path _value; do
    [ -n "$_path" ] || continue
    if printf '%s\n' "$_value" > "$_path" 2>/tmp/ktstr-sysctl.err; then
      emit_event sysctl path "$_path" value "$_value"
    else
      emit_event sysctl_failed path "$_path" value "$_value" error "$(cat /tmp/ktstr-sysctl.err)"
    fi
  done < /ktstr/sysctls
}

make_cgroup_parent() {
  [ -n "$KTSTR_CGROUP_PARENT" ] || return 0
  echo "+cpu +cpuset" > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null
  mkdir -p "/sys/fs/cgroup$KTSTR_CGROUP_PARENT"
  if [ -d "/sys/fs/cgroup$KTSTR_CGROUP_PARENT" ]; then
    emit_event cgroup_parent path "$KTSTR_CGROUP_PARENT" \
      controllers "$(cat "/sys/fs/cgroup$KTSTR_CGROUP_PARENT/cgroup.controllers")"
  fi
}

# start_scheduler: returns 0 when attached (or nothing to attach), 1 otherwise
start_scheduler() {
  case "$KTSTR_SCHED_KIND" in
    eevdf)
      emit_event sched_none state "$(scx_state)"
      return 0
      ;;
    builtin)
      _seq0=$(scx_seq)
      sh /ktstr/enable.sh > "$SCHED_LOG" 2>&1
      emit_event sched_enable_cmds status "$?"
      ;;
    binary)
      _seq0=$(scx_seq)
      set --
      if [ -f /ktstr/sched_args ]; then
        while IFS= read -r _a; do set -- "$@" "$_a"; done < /ktstr/sched_args
      fi
      "$KTSTR_SCHED_BIN" "$@" > "$SCHED_LOG" 2>&1 &
      SCHED_PID=$!
      emit_event sched_started pid "$SCHED_PID" binary "$KTSTR_SCHED_BIN" state "$(scx_state)"
      ;;
  esac
  # attach proof: state=enabled, ops named, enable_seq moved past its value at start
  _deadline=$(( $(cut -d. -f1 /proc/uptime) + KTSTR_ATTACH_TIMEOUT_S ))
  while :; do
    if [ "$(scx_state)" = enabled ] && [ -n "$(scx_ops)" ] && [ "$(scx_seq)" -gt "$_seq0" ]; then
      emit_event sched_attached ops "$(scx_ops)" enable_seq "$(scx_seq)" state enabled
      return 0
    fi
    if [ -n "$SCHED_PID" ] && ! kill -0 "$SCHED_PID" 2>/dev/null; then
      wait "$SCHED_PID"
      _code=$?
      SCHED_PID=
      emit_event sched_exited code "$_code" phase attach state "$(scx_state)"
      return 1
    fi
    if [ "$(cut -d. -f1 /proc/uptime)" -ge "$_deadline" ]; then
      emit_event sched_not_attached state "$(scx_state)" ops "$(scx_ops)" \
        timeout_s "$KTSTR_ATTACH_TIMEOUT_S"
      return 1
    fi
    sleep 0.1
  done
}

# sched_check: 0 while the scheduler is still attached and running
sched_check() {
  case "$KTSTR_SCHED_KIND" in
    eevdf) return 0 ;;
  esac
  if [ -n "$SCHED_PID" ] && ! kill -0 "$SCHED_PID" 2>/dev/null; then
    wait "$SCHED_PID"
    _code=$?
    SCHED_PID=
    emit_event sched_exited code "$_code" phase run state "$(scx_state)"
    return 1
  fi
  if [ "$(scx_state)" != enabled ]; then
    emit_event sched_detached state "$(scx_state)" phase run
    # the process usually follows (it died, or it is printing its exit): record it
    if [ -n "$SCHED_PID" ]; then
      _deadline=$(( $(cut -d. -f1 /proc/uptime) + KTSTR_STOP_TIMEOUT_S ))
      while kill -0 "$SCHED_PID" 2>/dev/null && \
            [ "$(cut -d. -f1 /proc/uptime)" -lt "$_deadline" ]; do
        sleep 0.1
      done
      if ! kill -0 "$SCHED_PID" 2>/dev/null; then
        wait "$SCHED_PID"
        _code=$?
        SCHED_PID=
        emit_event sched_exited code "$_code" phase run state "$(scx_state)"
      fi
    fi
    return 1
  fi
  return 0
}

stop_scheduler() {
  case "$KTSTR_SCHED_KIND" in
    eevdf) return 0 ;;
    builtin)
      [ -f /ktstr/disable.sh ] && sh /ktstr/disable.sh >> "$SCHED_LOG" 2>&1
      emit_event sched_stopped state "$(scx_state)" how disable_cmds
      return 0
      ;;
  esac
  [ -n "$SCHED_PID" ] || return 0
  kill -INT "$SCHED_PID" 2>/dev/null
  _deadline=$(( $(cut -d. -f1 /proc/uptime) + KTSTR_STOP_TIMEOUT_S ))
  while kill -0 "$SCHED_PID" 2>/dev/null; do
    if [ "$(cut -d. -f1 /proc/uptime)" -ge "$_deadline" ]; then
      kill -KILL "$SCHED_PID" 2>/dev/null
      emit_event sched_kill_needed pid "$SCHED_PID"
      break
    fi
    sleep 0.1
  done
  wait "$SCHED_PID"
  _code=$?
  SCHED_PID=
  # the kernel finishes disabling asynchronously: give it the same bound
  _deadline=$(( $(cut -d. -f1 /proc/uptime) + KTSTR_STOP_TIMEOUT_S ))
  while [ "$(scx_state)" != disabled ] && [ "$(cut -d. -f1 /proc/uptime)" -lt "$_deadline" ]; do
    sleep 0.1
  done
  emit_event sched_stopped code "$_code" state "$(scx_state)" how sigint
}

report_scheduler() {
  [ -f "$SCHED_LOG" ] && emit_blob sched_log "$SCHED_LOG"
  dmesg | grep -E 'sched_ext|scx_' > /tmp/ktstr-dmesg-scx.txt 2>/dev/null
  emit_blob dmesg_sched_ext /tmp/ktstr-dmesg-scx.txt
}
