"""The command line behind chaos.py: typed argument validators and the last-resort error mapping."""
