"""Tests of utal_lightning.loop: the refresh Callback and preemption."""
