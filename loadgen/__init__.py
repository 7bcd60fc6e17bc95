"""Locust-side load generation: trading personas and the metrics plugin that streams per-second results."""
