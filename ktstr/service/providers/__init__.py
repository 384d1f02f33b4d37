"""SUT providers: how a job reaches a SUT (seed 002's scheduler-plugin interface)."""
