"""Tests of utal_lightning.models: CoLA, IOCNet, their losses, mining, inference and the LightningModules."""
