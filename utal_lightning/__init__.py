"""utal-lightning: unsupervised temporal action localization (FEEL, COPL) in PyTorch Lightning."""

__version__ = "0.1.0"
