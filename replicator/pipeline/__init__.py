"""Pure decisions only: canonical form, mapping, scope, references, plan (and the guards), PATCH,
filters, what a write's answer says, the cycle's outcome and back-off. No `await`, no I/O, no clock:
tests/unit/test_boundaries.py walks these modules' syntax trees to keep it so. The I/O around them is
in replicator/cycle/.
"""
