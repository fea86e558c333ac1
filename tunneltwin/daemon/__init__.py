"""The daemon: the tick loop and its wiring, audit, recording, metrics, health, validation."""
