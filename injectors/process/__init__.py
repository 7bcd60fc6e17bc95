"""Process faults, here or over SSH: `process.kill` and `process.pause`; what they share is in common.py."""
