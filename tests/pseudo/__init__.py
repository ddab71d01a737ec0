"""Tests of utal_lightning.pseudo: CCI, HAS, PLRI, IIS selection and spectral clustering."""
