"""Running a command's typed function as a command line (jsonargparse), with the project's help formatting.

A parameter typed with a dataclass that sets ``flat_flags = True`` (``GenerationSettings``) is laid out flat: each
of its fields is a top-level flag (``--num_inference_steps``, not ``--settings.num_inference_steps``), grouped
under the dataclass's description, with the function's default instance giving the defaults.
"""

from __future__ import annotations

import dataclasses
import inspect
import typing


def flat_parameters(function) -> dict[str, type]:
    """``function``'s parameters whose type is a ``flat_flags`` dataclass: name → the dataclass."""
    if not inspect.isfunction(function):
        return {}
    hints = typing.get_type_hints(function)
    return {
        name: hint
        for name, hint in hints.items()
        if name != "return" and dataclasses.is_dataclass(hint) and getattr(hint, "flat_flags", False)
    }


def run_command(components, argv: list[str], prog: str, description: str | None = None):
    """Runs a command's typed function (or a list or dict of them, as subcommands) with jsonargparse; every
    command's help goes through ``PlainHelpFormatter`` (docstring markup as plain text, types by name)."""
    from jsonargparse import CLI

    from .help_format import PlainHelpFormatter

    if flat_parameters(components):
        return _run_flat(components, argv, prog, description)
    options = {"description": description} if description else {}
    return CLI(components, args=argv, prog=prog, as_positional=False, formatter_class=PlainHelpFormatter, **options)


def flat_parser(function, prog: str | None = None, description: str | None = None, exit_on_error: bool = True):
    """The jsonargparse parser of ``function``: ``--config``, its parameters, and the fields of its ``flat_flags``
    dataclass parameters as top-level flags, defaulting to the function's default instances."""
    import docstring_parser
    from jsonargparse import ActionConfigFile, ArgumentParser

    from .help_format import PlainHelpFormatter

    if description is None:
        docstring = docstring_parser.parse(inspect.getdoc(function) or "")
        description = "\n\n".join(part for part in (docstring.short_description, docstring.long_description) if part)
    parser = ArgumentParser(
        prog=prog, description=description, formatter_class=PlainHelpFormatter, default_env=False,
        exit_on_error=exit_on_error,
    )  # fmt: skip
    parser.add_argument("--config", action=ActionConfigFile, help="Path to a configuration file.")
    flat = flat_parameters(function)
    parser.add_function_arguments(function, skip=set(flat), as_group=False, fail_untyped=True)
    parameters = inspect.signature(function).parameters
    for name, settings_class in flat.items():
        parser.add_class_arguments(settings_class, nested_key=None)
        default = parameters[name].default
        if default is not inspect.Parameter.empty:
            parser.set_defaults(dataclasses.asdict(default))
    return parser


def flat_arguments(function, parser, argv: list[str]) -> dict:
    """``function``'s keyword arguments from ``argv`` parsed by its ``flat_parser``: values instantiated (dataclass-
    typed ones as objects), each ``flat_flags`` dataclass built from its top-level fields."""
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes  # jsonargparse < 4.49
    parsed = instantiate(parser.parse_args(argv)).as_dict()  # dataclass-typed values (story's characters) as objects
    parameters = inspect.signature(function).parameters
    flat = flat_parameters(function)
    arguments = {key: value for key, value in parsed.items() if key in parameters and key not in flat}
    for name, settings_class in flat.items():
        arguments[name] = settings_class(
            **{field.name: parsed[field.name] for field in dataclasses.fields(settings_class)}
        )
    return arguments


def _run_flat(function, argv: list[str], prog: str, description: str | None):
    """``run_command`` for a function with ``flat_flags`` dataclass parameters."""
    return function(**flat_arguments(function, flat_parser(function, prog, description), argv))
