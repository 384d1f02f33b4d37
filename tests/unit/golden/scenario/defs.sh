# ktstr scenario golden_defs: rendered by ktstr.scenario.render, sourced by the guest
# init (functions from lib/scenario.sh). 1 step(s), 4.00 s of holds.

scn_step_1() {
  scn_cg_add c0 cg_0 0-1
  scn_spawn c0 cg_0 3 cpu_spin normal 0 0 ''
  scn_cg_add c1 outer ''
  scn_cg_add c2 outer/a ''
  scn_spawn c2 outer/a 1 cpu_spin rr 5 0 ''
  scn_cg_add c3 outer/b ''
  scn_spawn c3 outer/b 2 cpu_spin normal 0 -5 2-3
}

scenario_main() {
  scn_begin '/ktstr' 30 10
  emit_event scn_step step 1 hold 'frac(1)'
  scn_step_1
  scn_hold 400 || return 1
  return 0
}
