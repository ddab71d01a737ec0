"""End-to-end tests: whole `utal fit` runs, in process or as subprocesses (most are slow)."""
