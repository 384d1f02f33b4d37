"""Pure: a ``ScenarioPlan`` as the shell script the guest sources (``/ktstr/scenario.sh``).

The script only defines ``scenario_main`` (and one function per step); the functions it
calls live in ``initramfs/lib/scenario.sh``, which the init includes.
"""

from __future__ import annotations

from ktstr.image.templates import render
from ktstr.scenario.plan import ScenarioPlan

TEMPLATE = "scenario.sh.j2"
#: guest path of the rendered script in the run segment
GUEST_SCRIPT = "/ktstr/scenario.sh"
#: guest-side bounds (seconds): workers ready after spawn, workers gone after SIGTERM
READY_TIMEOUT_S = 30
STOP_TIMEOUT_S = 10


def render_scenario(plan: ScenarioPlan, *, ready_s: int = READY_TIMEOUT_S,
                    stop_s: int = STOP_TIMEOUT_S) -> str:
    return render(TEMPLATE, plan=plan, ready_s=ready_s, stop_s=stop_s)
