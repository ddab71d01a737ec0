"""Tests of utal_lightning.data: the dataset layouts, loading, sampling and the synthetic generator."""
