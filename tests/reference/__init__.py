"""Slow, obvious reference implementations the package's maths is compared against."""
