"""A PingOne emulator for tests: several environments in one process behind one root URL, with the
token endpoint, the Platform API (users, groups, memberships, nesting, populations) and the SCIM API
as PingOne's documents and OpenAPI document describe them (see the PingOne notes of issue 15).

``async with serve_pingone() as emulator``: ``emulator.add_environment()`` gives an
:class:`Environment` to seed and inspect; ``emulator.api_url``/``auth_url``/``scim_url`` are the
settings a client is configured with. Where the documents are silent, :class:`PingOneSwitches` chooses.

Modules: ``app`` (server, middleware, faults), ``auth`` (token endpoint, bearer check),
``platform_users`` and ``platform_groups`` (Platform routes), ``scim`` (SCIM routes), ``environment``
(one environment and its seeding API), ``directory`` (populations, users, groups and their rules),
``memberships`` (static, dynamic, nested), ``filters``, ``hal`` (HAL answers and cursor paging),
``errors`` (P1Error answers), ``context`` (request helpers), ``switches``.
"""

from replicator.testing.pingone.app import PingOneEmulator, serve_pingone
from replicator.testing.pingone.environment import Environment
from replicator.testing.pingone.errors import PlatformProblem
from replicator.testing.pingone.switches import PingOneSwitches

__all__ = ["Environment", "PingOneEmulator", "PingOneSwitches", "PlatformProblem", "serve_pingone"]
