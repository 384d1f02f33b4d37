"""Workload binaries from Debian packages (``stress-ng``, ``rt-tests``)."""

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
