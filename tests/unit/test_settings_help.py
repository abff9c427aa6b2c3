"""Help texts, defaults and variables of every setting come from the schema: `run --help` and README's
settings table cannot drift from it (replicator.settings_help)."""

from __future__ import annotations

from pathlib import Path

import pytest

from replicator.cli_parser import build_parser
from replicator.config import env_name, flag_name, iter_leaves
from replicator.settings_help import HELP, choices, default_of, help_key, iter_settings, settings_table, value_text

README = Path(__file__).resolve().parents[2] / "README.md"


def run_help(monkeypatch: pytest.MonkeyPatch) -> str:
    """The settings part of `scim-replicator run --help`, one long line (wide, so no word is broken)."""
    monkeypatch.setenv("COLUMNS", "10000")
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command")
    text = commands.choices["run"].format_help()  # type: ignore[attr-defined]
    return " ".join(text.split("settings (also from", 1)[1].split())


def test_every_setting_has_help_and_no_help_is_stale() -> None:
    """HELP has one entry per setting (sides and resource types written `*`), and none for a setting gone."""
    keys = {help_key(path) for path, _, _ in iter_settings()}
    assert keys == set(HELP)


def test_run_help_shows_each_setting_with_its_variable_default_and_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every leaf's flag in `run --help` says what it means, its default, its environment variable and,
    for a Literal, its choices."""
    section = run_help(monkeypatch)
    leaves = list(iter_leaves())
    starts = [section.index(f" {flag_name(path)} ") if i else section.index(f"{flag_name(path)} ")
              for i, (path, _) in enumerate(leaves)]
    for (path, annotation), start, end in zip(leaves, starts, [*starts[1:], len(section)], strict=True):
        entry = section[start:end]
        assert f"env {env_name(path)}" in entry, entry
        assert f"(default: {value_text(default_of(path))};" in entry, entry
        assert " ".join(HELP[help_key(path)].split()) in entry, entry
        for choice in choices(annotation):
            assert choice in entry, entry
    assert "(default: 16; env SCIMREP_CONCURRENCY)" in section
    assert "{debug,info,warning,error}" in section and 'default: userName eq "%s"' in section


def test_settings_table_names_every_setting_with_its_variables_and_default() -> None:
    """The generated table has a row per setting naming it, its variables (or TOML only) and its default."""
    rows = settings_table().splitlines()[2:]
    for path, _, toml_only in iter_settings():
        row = next(r for r in rows if f"`{path}`" in r)
        assert ("(TOML only)" in row) if toml_only else (f"`{env_name(path)}`" in row), row
        default = value_text(default_of(path))
        assert f"| {'none' if default == 'none' else f'`{default}`'} |" in row, row
    assert "`SCIMREP_SOURCE_CLIENT_SECRET_FILE`" in settings_table()


def test_readme_settings_table_is_the_generated_one() -> None:
    """README's settings table is settings_table() word for word (print it with
    `python -c "from replicator.settings_help import settings_table; print(settings_table())"`)."""
    assert settings_table() in README.read_text(encoding="utf-8"), "README's settings table drifted from the schema"


def test_an_abbreviated_flag_is_refused_not_taken_for_the_flag_it_begins(capsys: pytest.CaptureFixture[str]) -> None:
    """`run --allow` must not lift the mass-delete guard as `--allow-mass-delete`, nor `--dry-ru` mean
    `--dry-run`: flags are taken whole, and a shortened one is an unknown flag naming the one meant."""
    parser = build_parser()
    for short, meant in (("--allow", "--allow-mass-delete"), ("--dry-ru", "--dry-run")):
        with pytest.raises(SystemExit) as stopped:
            parser.parse_args(["run", "--once", short])
        assert stopped.value.code == 2, short
        assert f"unknown flag {short} (did you mean {meant}?)" in capsys.readouterr().err
    assert parser.parse_args(["run", "--once", "--allow-mass-delete"]).allow_mass_delete is True


def test_a_misspelt_command_names_the_command_meant(capsys: pytest.CaptureFixture[str]) -> None:
    """`scim-replicator runn` says which command was meant, in one line."""
    with pytest.raises(SystemExit):
        build_parser().parse_args(["runn"])
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "(did you mean run?)" in err, err
