"""The magicnaming command: help, every command's entry point, encoder create/info (the demo: tests/test_demo.py)."""

import importlib
import inspect
import json

import pytest

from namespace.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


def test_an_unknown_command_fails_clearly(capsys):
    assert main(["trian"]) == 2
    assert "unknown command 'trian'" in capsys.readouterr().err


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_imports_a_main_taking_argv_and_prog(command):
    module_name, function = COMMANDS[command][0].split(":")
    entry = getattr(importlib.import_module(module_name), function)
    assert list(inspect.signature(entry).parameters) == ["argv", "prog"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
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
