"""The upstream example sched_ext schedulers from the kernel tree (tools/sched_ext).

Their binaries are built by ``ktstr schedulers build`` from Debian's ``linux-source``
package that matches the kernel series, and found by ``SchedulerSpec.discover``.
"""

from ktstr import Sysctl, TopologyConstraints, declare_scheduler

SCX_SIMPLE = declare_scheduler(
    name="scx_simple",
    topology=(1, 2, 2, 1),
    description="global weighted vtime or FIFO queue",
)

SCX_QMAP = declare_scheduler(
    name="scx_qmap",
    topology=(1, 2, 2, 1),
    description="five-level FIFO queue with BPF map priorities; error/stall injection",
    verbose_args=("-v",),
)

SCX_CENTRAL = declare_scheduler(
    name="scx_central",
    topology=(1, 1, 4, 1),
    constraints=TopologyConstraints(min_cpus=2),
    description="central CPU makes all scheduling decisions (tickless)",
)

SCX_FLATCG = declare_scheduler(
    name="scx_flatcg",
    topology=(1, 2, 2, 1),
    sysctls=[Sysctl("kernel.sched_autogroup_enabled", "0")],
    description="flattened cgroup hierarchy weighted scheduling",
)

SCX_PAIR = declare_scheduler(
    name="scx_pair",
    topology=(1, 1, 2, 2),
    constraints=TopologyConstraints(requires_smt=True),
    description="core scheduling on sibling pairs",
)

SCX_USERLAND = declare_scheduler(
    name="scx_userland",
    topology=(1, 1, 2, 1),
    description="vruntime scheduling decisions made in user space",
)

SCX_CPU0 = declare_scheduler(
    name="scx_cpu0",
    topology=(1, 1, 2, 1),
    description="runs every task on CPU 0",
)

SCX_SDT = declare_scheduler(
    name="scx_sdt",
    topology=(1, 2, 2, 1),
    description="simple scheduler with arena-backed per-task data",
)
