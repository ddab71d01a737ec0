"""Helpers shared by the tests. Test modules import from here or from tests.reference, never from
each other."""
