"""Scenarios: recorded and synthetic plant data, replay, rule checking and reports."""
