#!/bin/busybox sh
# ktstr guest init (ktstr). Rendered from initramfs/init.sh.j2; do not edit the
# rendered copy. Per-run parameters come from /ktstr/params.sh (the run segment).
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export HOME=/root
# the image ships busybox's applet links; install them only if it does not
[ -e /bin/mount ] || /bin/busybox --install -s /bin
mkdir -p /proc /sys /dev /tmp /run /root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /dev/shm
mount -t cgroup2 cgroup2 /sys/fs/cgroup
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
[ -f /etc/ld.so.cache ] || :

# --- messages to the host on the ktstr.results port (fd 3) ---------------------------
uptime_s() { read -r _up _idle < /proc/uptime; printf '%s' "$_up"; }
# now: sets NOW to the uptime without a subshell (each fork is slow under TCG)
now() { read -r NOW _idle < /proc/uptime; }
b64() { base64 -w 0 "$@"; }
emit() { printf '%s\n' "$1" >&3; }
emit_log() { emit "{\"t\":\"log\",\"msg\":\"$(printf '%s' "$1" | tr -d '"\\')\"}"; }
# emit_blob NAME FILE
emit_blob() {
  emit "{\"t\":\"blob\",\"name\":\"$1\",\"text_b64\":\"$(b64 "$2" 2>/dev/null)\"}"
}
# emit_event NAME [KEY VALUE]...  (values must not contain quotes or backslashes)
emit_event() {
  _name=$1; shift
  _fields=""
  while [ $# -ge 2 ]; do
    _v=$(printf '%s' "$2" | tr -d '"\\' | tr '\n' ' ')
    _fields="$_fields${_fields:+,}\"$1\":\"$_v\""
    shift 2
  done
  now
  emit "{\"t\":\"event\",\"name\":\"$_name\",\"uptime_s\":$NOW,\"fields\":{$_fields}}"
}
find_port() {
  for _d in /sys/class/virtio-ports/*; do
    [ -f "$_d/name" ] || continue
    read -r _pname < "$_d/name"
    if [ "$_pname" = "$1" ]; then
      printf '/dev/%s' "${_d##*/}"
      return 0
    fi
  done
  return 1
}

# --- what the guest sees: one line per CPU and per NUMA node --------------------------
# Mostly shell builtins (read, printf): every fork+exec costs milliseconds under TCG and
# this runs on every boot. The cpumap lists (thread_siblings_list, node cpulist) are
# binary sysfs attributes that fail busybox read's byte-by-byte reads: those use cat.
rd() { _v=-; [ -r "$1" ] && read -r _v < "$1"; printf '%s' "$_v"; }
report_topology() {
  _out=/tmp/ktstr-topology.txt
  {
    printf 'online %s\n' "$(rd /sys/devices/system/cpu/online)"
    for _c in /sys/devices/system/cpu/cpu[0-9]*; do
      _t=$_c/topology
      [ -d "$_t" ] || continue
      read -r _pkg < "$_t/physical_package_id"
      _die=0; [ -r "$_t/die_id" ] && read -r _die < "$_t/die_id"
      read -r _core < "$_t/core_id"
      _sib=$(cat "$_t/thread_siblings_list")
      _l3=-; [ -r "$_c/cache/index3/shared_cpu_list" ] && read -r _l3 < "$_c/cache/index3/shared_cpu_list"
      printf 'cpu %s package=%s die=%s core=%s siblings=%s l3=%s\n' "${_c##*/cpu}" \
        "$_pkg" "$_die" "$_core" "$_sib" "$_l3"
    done
    for _d in /sys/devices/system/node/node[0-9]*; do
      [ -d "$_d" ] || continue
      _m=0
      while read -r _a _b _k _v _u; do
        [ "$_k" = MemTotal: ] && { _m=$_v; break; }
      done < "$_d/meminfo"
      _cl=$(cat "$_d/cpulist")
      read -r _dist < "$_d/distance"
      set -- $_dist
      _dl=$1; shift
      for _x in "$@"; do _dl="$_dl,$_x"; done
      printf 'node %s cpulist=%s memkb=%s distance=%s\n' "${_d##*/node}" "$_cl" "$_m" "$_dl"
    done
  } > "$_out"
  emit "{\"t\":\"topology\",\"text_b64\":\"$(b64 "$_out")\"}"
}

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

# --- scenarios: cgroups, two-phase started workers, payloads ---------------------------
# Used by /ktstr/scenario.sh (rendered by ktstr.scenario.render): it defines
# scenario_main, which calls these functions; run_scenario calls scn_finish afterwards.
# Workers: /usr/bin/ktstr-worker (ktstr/guest/native/worker.c). Each cgroup has a key
# (c0, c1, ...); $SCN_DIR/pids/KEY lists the PIDs of its running workers.
SCN_DIR=/tmp/ktstr-scn
SCN_WORKER=/usr/bin/ktstr-worker
SCN_CG=
SCN_READY_S=30
SCN_STOP_S=10

# centiseconds of uptime (no fork; "12.34" -> 1234)
scn_now() {
  read -r _scn_up _scn_idle < /proc/uptime
  echo $(( ${_scn_up%.*} * 100 + 1${_scn_up#*.} - 100 ))
}

# alive and not a zombie
scn_alive() {
  [ -r "/proc/$1/status" ] || return 1
  case "$(sed -n 's/^State:[[:space:]]*\(.\).*/\1/p' "/proc/$1/status" 2>/dev/null)" in
    ''|Z|X) return 1 ;;
  esac
  return 0
}

scn_failed() {  # scn_failed OP CGROUP MESSAGE
  emit_event scn_op_failed op "$1" cgroup "$2" error "$3"
}

scn_enable() {  # controllers for the children of cgroup directory $1
  echo +cpuset > "$1/cgroup.subtree_control" 2>/dev/null
  echo +cpu > "$1/cgroup.subtree_control" 2>/dev/null
}

scn_begin() {  # scn_begin ROOT READY_S STOP_S
  SCN_CG=/sys/fs/cgroup$1
  SCN_READY_S=$2
  SCN_STOP_S=$3
  mkdir -p "$SCN_DIR/reports" "$SCN_DIR/pids" "$SCN_DIR/logs"
  : > "$SCN_DIR/spawned"
  _scn_p=/sys/fs/cgroup
  scn_enable "$_scn_p"
  for _scn_part in $(echo "$1" | tr '/' ' '); do
    _scn_p=$_scn_p/$_scn_part
    mkdir -p "$_scn_p"
    scn_enable "$_scn_p"
  done
  emit_event scenario_begin root "$1" controllers "$(cat "$SCN_CG/cgroup.subtree_control")"
}

scn_cg_add() {  # scn_cg_add KEY NAME CPUS
  _scn_d=$SCN_CG/$2
  scn_enable "${_scn_d%/*}"
  if ! mkdir -p "$_scn_d" 2> "$SCN_DIR/err"; then
    scn_failed add_cgroup "$2" "$(cat "$SCN_DIR/err")"
    return 1
  fi
  touch "$SCN_DIR/pids/$1"
  printf '%s\n' "$2" > "$SCN_DIR/pids/$1.name"
  [ -n "$3" ] && scn_cg_cpus "$1" "$2" "$3"
  emit_event scn_cgroup_added cgroup "$2" key "$1"
}

scn_cg_cpus() {  # scn_cg_cpus KEY NAME CPUS ("" clears: inherit the parent's)
  if ! printf '%s\n' "$3" > "$SCN_CG/$2/cpuset.cpus" 2> "$SCN_DIR/err"; then
    scn_failed cpuset "$2" "writing '$3': $(cat "$SCN_DIR/err")"
    return 1
  fi
  emit_event scn_cpuset cgroup "$2" cpus "$3" \
    effective "$(cat "$SCN_CG/$2/cpuset.cpus.effective" 2>/dev/null)"
}

# scn_spawn KEY NAME COUNT TYPE POLICY PRIORITY NICE AFFINITY
# phase 1: start COUNT workers; each joins the cgroup, sets policy, nice and affinity and
# writes its ready file; phase 2 (all ready, bounded): SIGUSR1 starts them together.
scn_spawn() {
  _scn_next=0
  [ -f "$SCN_DIR/pids/$1.next" ] && _scn_next=$(cat "$SCN_DIR/pids/$1.next")
  _scn_new=
  _scn_i=0
  while [ "$_scn_i" -lt "$3" ]; do
    _scn_tag=$1.$((_scn_next + _scn_i))
    "$SCN_WORKER" run --name "$2" --index "$((_scn_next + _scn_i))" --cgroup "$SCN_CG/$2" \
      --type "$4" --policy "$5" --priority "$6" --nice "$7" --cpus "$8" \
      --ready "$SCN_DIR/ready.$_scn_tag" --report "$SCN_DIR/reports/$_scn_tag.json" \
      > "$SCN_DIR/logs/$_scn_tag.log" 2>&1 &
    _scn_new="$_scn_new $!"
    echo "$1 $((_scn_next + _scn_i)) $! $2" >> "$SCN_DIR/spawned"
    _scn_i=$((_scn_i + 1))
  done
  echo "$((_scn_next + $3))" > "$SCN_DIR/pids/$1.next"
  _scn_deadline=$(( $(scn_now) + SCN_READY_S * 100 ))
  _scn_i=$_scn_next
  while [ "$_scn_i" -lt "$((_scn_next + $3))" ]; do
    if [ -f "$SCN_DIR/ready.$1.$_scn_i" ]; then
      _scn_i=$((_scn_i + 1))
    elif [ "$(scn_now)" -ge "$_scn_deadline" ]; then
      scn_failed spawn "$2" "worker $_scn_i not ready after $SCN_READY_S s"
      break
    else
      sleep 0.02
    fi
  done
  # shellcheck disable=SC2086
  kill -USR1 $_scn_new 2>/dev/null
  for _scn_p in $_scn_new; do echo "$_scn_p" >> "$SCN_DIR/pids/$1"; done
  emit_event scn_spawned cgroup "$2" count "$3" type "$4" policy "$5" pids "$_scn_new"
}

scn_reap() {  # scn_reap PID...: wait for each (bounded by SCN_STOP_S), then SIGKILL
  _scn_deadline=$(( $(scn_now) + SCN_STOP_S * 100 ))
  for _scn_p in "$@"; do
    while scn_alive "$_scn_p" && [ "$(scn_now)" -lt "$_scn_deadline" ]; do sleep 0.05; done
    if scn_alive "$_scn_p"; then
      kill -KILL "$_scn_p" 2>/dev/null
      emit_event scn_kill_needed pid "$_scn_p"
    fi
    wait "$_scn_p" 2>/dev/null
  done
}

scn_stop() {  # scn_stop KEY NAME: SIGTERM the cgroup's workers; they write their reports
  _scn_pids=$(cat "$SCN_DIR/pids/$1" 2>/dev/null)
  [ -n "$_scn_pids" ] || return 0
  # shellcheck disable=SC2086
  kill -TERM $_scn_pids 2>/dev/null
  # shellcheck disable=SC2086
  scn_reap $_scn_pids
  : > "$SCN_DIR/pids/$1"
  emit_event scn_stopped cgroup "$2" pids "$(echo $_scn_pids)"
}

scn_cg_remove() {  # scn_cg_remove KEY NAME
  scn_stop "$1" "$2"
  _scn_deadline=$(( $(scn_now) + SCN_STOP_S * 100 ))
  until rmdir "$SCN_CG/$2" 2> "$SCN_DIR/err"; do
    if [ "$(scn_now)" -ge "$_scn_deadline" ]; then
      scn_failed remove_cgroup "$2" "$(cat "$SCN_DIR/err")"
      return 1
    fi
    sleep 0.05
  done
  emit_event scn_cgroup_removed cgroup "$2"
}

scn_affinity() {  # scn_affinity KEY NAME CPUS
  _scn_pids=$(cat "$SCN_DIR/pids/$1" 2>/dev/null)
  [ -n "$_scn_pids" ] || return 0
  # shellcheck disable=SC2086
  if ! "$SCN_WORKER" affinity "$3" $_scn_pids 2> "$SCN_DIR/err"; then
    scn_failed set_affinity "$2" "$(cat "$SCN_DIR/err")"
    return 1
  fi
  emit_event scn_affinity cgroup "$2" cpus "$3"
}

scn_move() {  # scn_move SRC_KEY SRC_NAME DST_KEY DST_NAME: every task, partners included
  for _scn_p in $(cat "$SCN_CG/$2/cgroup.procs"); do
    echo "$_scn_p" > "$SCN_CG/$4/cgroup.procs" 2> "$SCN_DIR/err" || \
      scn_failed move_all_tasks "$2" "pid $_scn_p: $(cat "$SCN_DIR/err")"
  done
  cat "$SCN_DIR/pids/$1" >> "$SCN_DIR/pids/$3"
  : > "$SCN_DIR/pids/$1"
  emit_event scn_moved src "$2" dst "$4"
}

scn_payload_run() {  # scn_payload_run ID CGROUP EXE ARG...
  _scn_id=$1
  _scn_cg=$2
  shift 2
  if [ -n "$_scn_cg" ]; then
    sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$SCN_CG/$_scn_cg" "$@" \
      > "$SCN_DIR/payload.$_scn_id.log" 2>&1 < /dev/null &
  else
    "$@" > "$SCN_DIR/payload.$_scn_id.log" 2>&1 < /dev/null &
  fi
  echo "$!" > "$SCN_DIR/payload.$_scn_id.pid"
  emit_event scn_payload_started id "$_scn_id" pid "$!" cgroup "$_scn_cg"
}

scn_payload_end() {  # scn_payload_end ID HOW: reap it, report status and output
  _scn_p=$(cat "$SCN_DIR/payload.$1.pid")
  scn_reap "$_scn_p"
  wait "$_scn_p" 2>/dev/null
  _scn_status=$?
  rm -f "$SCN_DIR/payload.$1.pid"
  emit_event scn_payload_exit id "$1" status "$_scn_status" how "$2"
  emit_blob "payload_$1" "$SCN_DIR/payload.$1.log"
}

scn_payload_wait() {  # scn_payload_wait ID TIMEOUT_S (SIGTERM after the timeout)
  _scn_p=$(cat "$SCN_DIR/payload.$1.pid" 2>/dev/null)
  [ -n "$_scn_p" ] || return 0
  _scn_deadline=$(( $(scn_now) + $2 * 100 ))
  while scn_alive "$_scn_p" && [ "$(scn_now)" -lt "$_scn_deadline" ]; do
    sched_check || break
    sleep 0.1
  done
  _scn_how=exited
  if scn_alive "$_scn_p"; then
    kill -TERM "$_scn_p" 2>/dev/null
    _scn_how=timeout
  fi
  scn_payload_end "$1" "$_scn_how"
}

scn_payload_kill() {  # scn_payload_kill ID
  _scn_p=$(cat "$SCN_DIR/payload.$1.pid" 2>/dev/null)
  [ -n "$_scn_p" ] || return 0
  kill -TERM "$_scn_p" 2>/dev/null
  scn_payload_end "$1" killed
}

scn_hold() {  # scn_hold CENTISECONDS: wait, checking the scheduler every 100 ms
  _scn_end=$(( $(scn_now) + $1 ))
  while [ "$(scn_now)" -lt "$_scn_end" ]; do
    sched_check || return 1
    sleep 0.1
  done
  sched_check
}

scn_loop() {  # scn_loop FUNCTION INTERVAL_CS TOTAL_CS: hold, run FUNCTION again, repeat
  _scn_loop_end=$(( $(scn_now) + $3 ))
  while :; do
    _scn_left=$(( _scn_loop_end - $(scn_now) ))
    [ "$_scn_left" -gt 0 ] || return 0
    [ "$_scn_left" -gt "$2" ] && _scn_left=$2
    scn_hold "$_scn_left" || return 1
    [ "$(scn_now)" -lt "$_scn_loop_end" ] || return 0
    "$1"
  done
}

scn_finish() {  # stop every worker at once (same end for all windows), then payloads
  _scn_all=
  for _scn_f in "$SCN_DIR"/pids/c*; do
    case "$_scn_f" in *.next|*.name|*'*'*) continue ;; esac
    _scn_all="$_scn_all $(cat "$_scn_f")"
    : > "$_scn_f"
  done
  if [ -n "$(echo $_scn_all)" ]; then
    # shellcheck disable=SC2086
    kill -TERM $_scn_all 2>/dev/null
    # shellcheck disable=SC2086
    scn_reap $_scn_all
    emit_event scn_stopped cgroup all pids "$(echo $_scn_all)"
  fi
  for _scn_f in "$SCN_DIR"/payload.*.pid; do
    [ -f "$_scn_f" ] || continue
    _scn_id=${_scn_f#"$SCN_DIR"/payload.}
    scn_payload_kill "${_scn_id%.pid}"
  done
  cat "$SCN_DIR"/reports/*.json > "$SCN_DIR/reports.jsonl" 2>/dev/null
  emit_blob worker_reports "$SCN_DIR/reports.jsonl"
  emit_blob worker_spawned "$SCN_DIR/spawned"
  cat "$SCN_DIR"/logs/*.log > "$SCN_DIR/worker-logs.txt" 2>/dev/null
  [ -s "$SCN_DIR/worker-logs.txt" ] && emit_blob worker_logs "$SCN_DIR/worker-logs.txt"
  emit_event scenario_end reports "$(ls "$SCN_DIR"/reports/*.json 2>/dev/null | wc -l)"
}

# --- mode "run": sysctls, cgroup parent, scheduler, workload, stop, report -----------
run_scenario() {
  apply_sysctls
  make_cgroup_parent
  if ! start_scheduler; then
    report_scheduler
    return 1
  fi
  _ok=0
  if [ -f /ktstr/scenario.sh ]; then
    # a declared scenario (ktstr.scenario, lib/scenario.sh) replaces the default workload
    . /ktstr/scenario.sh
    scenario_main || _ok=1
    scn_finish
    stop_scheduler
    report_scheduler
    return $_ok
  fi
  start_workload
  if [ "$KTSTR_WORKLOAD" = payload ]; then
    run_payload_to_end || _ok=1
  else
    run_for "$KTSTR_DURATION_S" || _ok=1
  fi
  stop_workload
  stop_scheduler
  report_scheduler
  return $_ok
}


KTSTR_MODE=exec
KTSTR_REPORT_TOPOLOGY=1
[ -f /ktstr/params.sh ] && . /ktstr/params.sh

port=$(find_port 'ktstr.results')
if [ -z "$port" ]; then
  echo "ktstr: virtio-serial port ktstr.results not found" > /dev/console
  poweroff -f
fi
exec 3>"$port"
now
read -r release < /proc/sys/kernel/osrelease
emit "{\"t\":\"hello\",\"uptime_s\":$NOW,\"release\":\"$release\"}"
[ "$KTSTR_REPORT_TOPOLOGY" = 1 ] && report_topology

status=0
case "$KTSTR_MODE" in
  exec)
    sh /ktstr/cmd.sh > /tmp/ktstr-stdout 2> /tmp/ktstr-stderr < /dev/null
    status=$?
    emit "{\"t\":\"exec\",\"status\":$status,\"stdout_b64\":\"$(b64 /tmp/ktstr-stdout)\",\"stderr_b64\":\"$(b64 /tmp/ktstr-stderr)\"}"
    ;;
  shell)
    echo "ktstr: interactive shell; 'exit' or Ctrl-D powers the VM off" > /dev/console
    setsid cttyhack sh -l
    status=$?
    ;;
  run)
    run_scenario
    status=$?
    ;;
  *)
    emit_log "unknown mode $KTSTR_MODE"
    status=2
    ;;
esac
now
emit "{\"t\":\"done\",\"status\":$status,\"uptime_s\":$NOW}"
exec 3>&-
# nothing to sync: the root file system is the initramfs
exec poweroff -f
