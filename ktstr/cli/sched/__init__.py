"""``ktstr sched ...``: run the scheduler service and a worker, and talk to the service.

Client verbs take ``--url``/``--token`` (env KTSTR_SCHED_URL / KTSTR_SCHED_TOKEN), falling
back to the ``sched.url``/``sched.token`` preferences; each prints a table, or JSON with
``--json``.
"""


from __future__ import annotations

import click

from ktstr.cli.sched.lease import (
    lease_acquire,
    lease_list,
    lease_release,
    lease_renew,
    usage,
)
from ktstr.cli.sched.plans import (
    plan_cancel,
    plan_exec,
    plan_list,
    plan_resubmit,
    plan_update,
    sutclass_list,
    worker_list,
)
from ktstr.cli.sched.service import sched_run, sched_worker
from ktstr.cli.sched.users import token_rotate, user_create, user_disable, user_list
from ktstr.extras import need_extra


@click.group("sched")
def sched_group() -> None:
    """The queued-plan scheduler: service, workers, users, plans.

    Needs the 'service' extra: pip install 'ktstr[service]'.
    """
    need_extra("service")


for _command in (sched_run, sched_worker, sutclass_list, plan_exec, plan_list, plan_update,
                 plan_cancel, plan_resubmit, worker_list, lease_acquire, lease_list,
                 lease_release, lease_renew, usage, user_create, user_list, user_disable,
                 token_rotate):
    sched_group.add_command(_command)
