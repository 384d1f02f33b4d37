"""Pure: a ``ScenarioPlan`` as the agent runs it (``ktstr.guest.protocol.ScenarioWire``).

Each planned command line (``scn_cg_add KEY NAME CPUS``, ...) becomes an argv-like op;
the agent (``ktstr/guest/native/scenario.c``) runs them step by step, holding each step
while it watches the scheduler.
"""

from __future__ import annotations

import shlex

from ktstr.guest.protocol import ScenarioStepPlan, ScenarioWire
from ktstr.scenario.plan import ScenarioPlan

#: guest-side bounds (seconds): workers ready after spawn, workers gone after SIGTERM
READY_TIMEOUT_S = 30
STOP_TIMEOUT_S = 10


def wire_plan(plan: ScenarioPlan, *, ready_s: int = READY_TIMEOUT_S,
              stop_s: int = STOP_TIMEOUT_S) -> ScenarioWire:
    return ScenarioWire(
        root=plan.root, ready_s=ready_s, stop_s=stop_s,
        steps=[ScenarioStepPlan(describe=step.describe, hold_cs=step.hold_cs,
                                loop_cs=step.loop_cs,
                                ops=[shlex.split(line) for line in step.lines])
               for step in plan.steps])
