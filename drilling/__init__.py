"""Emergency drills: drill files (experiments + runbook + objectives + schedule), runs, history."""
