"""Verdicts, checks and reports."""
