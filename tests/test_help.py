"""Every command's and subcommand's --help reads as plain text: no reST markup, no Python class reprs."""

import re

import pytest

from namespace.cli import COMMANDS, main
from namespace.help_format import plain_text

UNLISTED = {"train": ["export"]}  # handled before LightningCLI, so not in its usage line


def help_text(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--help"])
    assert exit_info.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_every_command_and_subcommand_is_plain_text(command, capsys):
    text = help_text([command], capsys)
    usage = text.split("\n\n", 1)[0]
    subcommands = re.search(r"\{([\w,-]+)\}", usage)  # e.g. {encode,mix,sample,from_text}
    texts = {command: text}
    for sub in [*(subcommands[1].split(",") if subcommands else []), *UNLISTED.get(command, [])]:
        texts[f"{command} {sub}"] = help_text([command, sub], capsys)
    for name, text in texts.items():
        assert "``" not in text and "<class '" not in text, f"magicnaming {name} --help:\n{text}"
    assert len(texts) > 1 or command in ("demo", "generate", "interpolate", "likeness")


def test_plain_text_of_rest_markup():
    assert (
        plain_text("``a`` and :class:`~x.y.Z`, :func:`f`, `docs <https://example.org>`_")
        == "a and Z, f, docs (https://example.org)"
    )
    assert plain_text("type: <class 'pathlib.Path'>, Optional[<class 'Path'>]") == "type: Path, Optional[Path]"
