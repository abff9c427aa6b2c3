"""What the wheel installs: the replicator package and its subpackages, no bare top-level package (such as
`state`) that could collide with another project's in a shared environment."""

from __future__ import annotations

import tomllib
from pathlib import Path

from setuptools import find_packages

ROOT = Path(__file__).resolve().parents[2]


def test_every_installed_package_lives_under_replicator() -> None:
    """The packages pyproject.toml's find rule selects are replicator and replicator.*, the state among them."""
    rule = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    packages = find_packages(str(ROOT), include=rule["include"], exclude=rule.get("exclude", ()))
    assert "replicator.state" in packages
    assert {name.partition(".")[0] for name in packages} == {"replicator"}, packages
