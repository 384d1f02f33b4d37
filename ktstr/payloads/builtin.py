"""Workload binaries from Debian packages (``stress-ng``, ``rt-tests``: hackbench and
cyclictest)."""

from ktstr import MetricCheck, MetricHint, OutputFormat, PayloadKind, Polarity, declare_payload

STRESS_NG = declare_payload(
    name="stress-ng",
    kind=PayloadKind.binary("stress-ng"),
    output=OutputFormat.STRESS_NG_YAML,
    default_args=["--metrics-brief", "--yaml", "/tmp/ktstr-payload.yaml"],
    default_checks=[MetricCheck.exit_code_eq(0)],
    metrics=[
        MetricHint(
            name="bogo_ops_per_second_real_time", unit="ops/s", polarity=Polarity.HIGHER_BETTER
        )
    ],
    description="stress-ng stressors; metrics from --yaml",
)

HACKBENCH = declare_payload(
    name="hackbench",
    kind=PayloadKind.binary("hackbench"),
    output=OutputFormat.TEXT,
    default_args=["--groups", "2", "--loops", "100"],
    default_checks=[MetricCheck.exit_code_eq(0)],
    metrics=[MetricHint(name="time_s", unit="s", polarity=Polarity.LOWER_BETTER)],
    description="scheduler messaging benchmark (rt-tests)",
)

#: wake-up latency of a periodic SCHED_OTHER thread (so the scheduler under test places
#: it); the 1 us histogram up to 10 ms gives the percentiles. Add ``-t N`` for N threads,
#: ``-D 10`` for a longer run (the last -D wins).
CYCLICTEST = declare_payload(
    name="cyclictest",
    kind=PayloadKind.binary("cyclictest"),
    output=OutputFormat.CYCLICTEST,
    default_args=["-q", "-m", "-D", "5", "-i", "1000", "-h", "10000"],
    default_checks=[MetricCheck.exit_code_eq(0), MetricCheck.exists("latency_max_us")],
    metrics=[MetricHint(name=f"latency_{s}_us", unit="us", polarity=Polarity.LOWER_BETTER)
             for s in ("min", "avg", "max", "p50", "p90", "p99", "p999")],
    description="timer wake-up latency (rt-tests); min/avg/max and percentiles",
)
