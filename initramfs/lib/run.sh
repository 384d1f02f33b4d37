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
