"""Ports to a plant: what the daemon reads telemetry from and writes setpoints to."""
