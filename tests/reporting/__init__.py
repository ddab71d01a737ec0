"""Tests of utal_lightning.reporting: summary.json, tables and figures."""
