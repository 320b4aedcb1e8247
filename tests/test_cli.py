"""The magicnaming command: help, unbuilt stages, encoder create/info (the demo: tests/test_demo.py)."""

import json

import pytest

from namespace.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)


def test_unknown_and_unbuilt_commands_fail_clearly(capsys):
    assert main(["trian"]) == 2
    assert "unknown command 'trian'" in capsys.readouterr().err
    unbuilt = [name for name, (module, _) in COMMANDS.items() if module is None]
    for name in unbuilt:
        assert main([name]) == 2
        assert "not built yet" in capsys.readouterr().err


@pytest.mark.parametrize("command", [name for name, (module, _) in COMMANDS.items() if module])
def test_every_built_command_has_help(command, capsys):
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
