"""Tests of utal_lightning.eval: proposals, NMS, detection mAP, clustering metrics and the file formats."""
