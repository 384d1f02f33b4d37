# ktstr scenario golden_steps: rendered by ktstr.scenario.render, sourced by the guest
# init (functions from lib/scenario.sh). 4 step(s), 5.00 s of holds.

scn_step_1() {
  scn_cg_add c0 cg_0 0-1
  scn_spawn c0 cg_0 2 cpu_spin normal 0 0 ''
  scn_cg_add c1 cg_1 2-3
  scn_spawn c1 cg_1 2 cpu_spin normal 0 0 ''
}

scn_step_2() {
  scn_cg_add c2 cg_2 ''
  scn_spawn c2 cg_2 1 futex_ping_pong normal 0 0 ''
  scn_cg_cpus c0 cg_0 0-2
  scn_cg_cpus c1 cg_1 3
  scn_payload_run s cg_2 stress-ng --metrics-brief --yaml /tmp/ktstr-payload.yaml --cpu 1 --timeout 1s
}

scn_step_3() {
  scn_cg_remove c2 cg_2
  scn_payload_wait s 5
}

scn_step_4() {
  scn_cg_cpus c0 cg_0 3
  scn_cg_cpus c1 cg_1 0-2
}

scenario_main() {
  scn_begin '/ktstr' 30 10
  emit_event scn_step step 1 hold 'frac(0.4)'
  scn_step_1
  scn_hold 200 || return 1
  emit_event scn_step step 2 hold 'frac(0.3)'
  scn_step_2
  scn_hold 150 || return 1
  emit_event scn_step step 3 hold 'fixed(0.5)'
  scn_step_3
  scn_hold 50 || return 1
  emit_event scn_step step 4 hold 'loop(0.5s)'
  scn_step_4
  scn_loop scn_step_4 50 100 || return 1
  return 0
}
