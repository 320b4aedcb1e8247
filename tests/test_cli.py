"""The magicnaming command: help, every command's entry point, encoder create/info (the demo: tests/test_demo.py)."""

import importlib
import inspect
import json
import re

import pytest

from namespace.cli import COMMANDS, DEMO_HEADING, SUBCOMMANDS, main


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


def test_help_groups_the_demos_commands_under_their_heading(capsys):
    assert main(["--help"]) == 0
    ours, demos = capsys.readouterr().out.split(DEMO_HEADING)
    listed = {re.split(r"\s{2,}", line.strip())[0] for line in demos.strip("\n").splitlines()}
    assert listed == {"demo", "miniature", "likeness", "encoder pretrain_tiny"}
    assert not any(f"  {name} " in ours for name in listed)


def test_an_unknown_command_fails_clearly(capsys):
    assert main(["trian"]) == 2
    assert "unknown command 'trian'" in capsys.readouterr().err


@pytest.mark.parametrize("command", [*COMMANDS.values(), *SUBCOMMANDS.values()])
def test_every_command_imports_a_main_taking_argv_and_prog(command):
    module_name, function = command.entry.split(":")
    entry = getattr(importlib.import_module(module_name), function)
    # run_demo: handed down by the dispatcher to the commands that build on the demo (the app)
    assert list(inspect.signature(entry).parameters) in (["argv", "prog"], ["argv", "prog", "run_demo"])


def test_the_app_is_handed_the_demo_and_builds_nothing_without_it(monkeypatch):
    from namespace import cli
    from namespace.inference.app import commands

    handed = {}
    monkeypatch.setattr(commands, "run_command", lambda *args: handed.update(run_demo=commands._RUN_DEMO.get()))
    assert main(["app"]) == 0 and handed["run_demo"] is cli.run_demo
    assert commands._RUN_DEMO.get() is None  # reset after the command


@pytest.mark.parametrize("command", [*COMMANDS, *(" ".join(words) for words in SUBCOMMANDS)])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*command.split(), "--help"])
    assert exit_info.value.code == 0
    assert "--config" in capsys.readouterr().out


def test_encoder_create_then_info(tmp_path, capsys):
    assert main(["encoder", "create", "--config", "configs/encoder/tiny.yaml", "--output", str(tmp_path / "e")]) == 0
    assert main(["encoder", "info", "--path", str(tmp_path / "e")]) == 0
    summary = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert (
        summary["name_shape"] == [8, 80] and summary["head_parameters"] == 40 * 64 + 64 + 64 * 64 + 64 + 64 * 640 + 640
    )


def test_encoder_create_refuses_an_existing_folder_unless_overwrite(tmp_path, capsys):
    create = ["encoder", "create", "--config", "configs/encoder/tiny.yaml", "--output", str(tmp_path / "e")]
    assert main(create) == 0
    weights = (tmp_path / "e/model.safetensors").read_bytes()
    assert main([*create, "--seed", "1"]) == 1
    assert "--output: expected a new folder" in capsys.readouterr().err
    assert (tmp_path / "e/model.safetensors").read_bytes() == weights  # untouched
    assert main([*create, "--seed", "1", "--overwrite", "true"]) == 0
    assert (tmp_path / "e/model.safetensors").read_bytes() != weights
