"""Run-time machinery of a `utal fit` process: signals, preemption checkpoints, requeue and auto-resume."""
