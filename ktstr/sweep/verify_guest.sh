# ktstr verifier cell, run in the guest as /ktstr/cmd.sh (init mode "exec").
# The host prepends the parameters: V_OBJ (the scheduler's .bpf.o, may be empty),
# V_BIN (the scheduler binary), V_ATTACH_S, V_STOP_S, V_LOG_CAP (bytes), V_CGROUP.
# Files: /ktstr/sched_args (one argument per line), /ktstr/sysctls ("path value" lines).
# Output: sections on stdout, each opened by a line "@@ktstr-verify:NAME@@"; parsed by
# ktstr.sweep.guestout. Every step is bounded; nothing here decides the verdict.
SCX=/sys/kernel/sched_ext
section() { printf '@@ktstr-verify:%s@@\n' "$1"; }
now() { cut -d. -f1 /proc/uptime; }
state() { cat "$SCX/state" 2>/dev/null || echo none; }
failed=0

if [ -n "$V_OBJ" ]; then
  veristat -o csv -e file,prog,verdict,duration,insns,states,peak_states,stack_depth,max_stack_depth \
    "$V_OBJ" > /tmp/v.csv 2> /tmp/v.err
  rc=$?
  section veristat_csv; cat /tmp/v.csv
  section veristat_rc; echo "$rc"
  section veristat_err; head -c 65536 /tmp/v.err
  { [ "$rc" != 0 ] || grep -q ',failure,' /tmp/v.csv; } && failed=1
fi

# sysctls and the cgroup parent, as for a run
if [ -f /ktstr/sysctls ]; then
  while read -r _p _v; do [ -n "$_p" ] && printf '%s\n' "$_v" > "$_p"; done < /ktstr/sysctls
fi
if [ -n "$V_CGROUP" ]; then
  echo "+cpu +cpuset" > /sys/fs/cgroup/cgroup.subtree_control 2>/dev/null
  mkdir -p "/sys/fs/cgroup$V_CGROUP"
fi

section progs_before; ktstr-proginfo
set --
if [ -f /ktstr/sched_args ]; then
  while IFS= read -r _a; do set -- "$@" "$_a"; done < /ktstr/sched_args
fi
start=$(cut -d' ' -f1 /proc/uptime)
"$V_BIN" "$@" > /tmp/sched.log 2>&1 &
pid=$!
deadline=$(( $(now) + V_ATTACH_S ))
while :; do
  [ "$(state)" = enabled ] && break
  kill -0 "$pid" 2>/dev/null || break
  [ "$(now)" -ge "$deadline" ] && break
  sleep 0.1
done
section state; state
section attach_window; echo "$start $(cut -d' ' -f1 /proc/uptime)"
section ops; cat "$SCX/root/ops" 2>/dev/null
section progs_loaded; ktstr-proginfo
section bpftool_json; bpftool -j prog show 2>/dev/null; echo
[ "$(state)" = enabled ] || failed=1

if kill -0 "$pid" 2>/dev/null; then
  kill -INT "$pid"
  deadline=$(( $(now) + V_STOP_S ))
  while kill -0 "$pid" 2>/dev/null && [ "$(now)" -lt "$deadline" ]; do sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null
fi
wait "$pid"
rc=$?
section sched_rc; echo "$rc"
section sched_log; tail -c 65536 /tmp/sched.log

# the full verifier log only when something failed (it can be large)
if [ -n "$V_OBJ" ] && [ "$failed" = 1 ]; then
  section verifier_log
  veristat -v "$V_OBJ" 2>&1 | head -c "$V_LOG_CAP"
fi
section dmesg; dmesg | grep -E 'sched_ext|scx_|BPF|bpf' | tail -n 200
section end
