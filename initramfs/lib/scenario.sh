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
