"""Test doubles that ship with the replicator (the demo uses them): an in-memory SCIM 2.0 server
(:class:`MemoryScimServer`, configured by :class:`Faults` and :class:`Quirks`) and seeded sample
directories (:mod:`replicator.testing.sample_data`, :mod:`replicator.testing.seeding`).

Modules: ``app`` (routes, middleware, start/stop), ``resources`` (storage and uniqueness), ``patch``,
``filter``, ``listing``, ``bulk``, ``faults`` (injecting :class:`Faults`), ``options``, ``protocol``
(schema URNs, resource kinds, the error answer :class:`ScimProblem`).
"""

from replicator.testing.app import MemoryScimServer, serve
from replicator.testing.options import Faults, Quirks
from replicator.testing.protocol import ScimProblem

__all__ = ["Faults", "MemoryScimServer", "Quirks", "ScimProblem", "serve"]
