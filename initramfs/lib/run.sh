# --- mode "run": sysctls, cgroup parent, scheduler, workload, stop, report -----------
run_scenario() {
  apply_sysctls
  make_cgroup_parent
  if ! start_scheduler; then
    report_scheduler
    return 1
  fi
  start_workload
  _ok=0
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
