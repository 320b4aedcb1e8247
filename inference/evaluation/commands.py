"""``magicnaming evaluate --config configs/eval/<name>.yaml --output DIR``: the evaluation from the shell.

Every field of ``EvaluationConfig`` is an option at the top level (``--encoder``, ``--sweep.delta [0.5,1,2]``,
``--scoring.identity face``), and a YAML config holds the same keys.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from jsonargparse import ActionConfigFile, ArgumentParser

from namespace.help_format import PlainHelpFormatter

from .config import EvaluationConfig


def evaluation_parser(prog: str = "magicnaming evaluate") -> ArgumentParser:
    """The command's parser: ``--config``, every ``EvaluationConfig`` field, ``--output``."""
    parser = ArgumentParser(prog=prog, description=__doc__, formatter_class=PlainHelpFormatter, default_env=False)
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML file of these options (configs/eval/)")
    parser.add_class_arguments(EvaluationConfig, nested_key=None, fail_untyped=True)
    parser.add_argument("--output", type=Path, required=True, help="the evaluation's folder (resumed if it exists)")
    return parser


def parse_evaluation(argv: list[str], prog: str = "magicnaming evaluate") -> tuple[EvaluationConfig, Path]:
    """The config and the output folder a command line asks for."""
    parser = evaluation_parser(prog)
    namespace = parser.parse_args(argv)
    output = namespace.pop("output")
    namespace.pop("config", None)
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes  # renamed in jsonargparse 4.49
    config = instantiate(namespace)
    return EvaluationConfig(**{key: config[key] for key in EvaluationConfig.__dataclass_fields__}), Path(output)


def main(argv: list[str], prog: str = "magicnaming evaluate") -> int:
    from .run import evaluate

    config, output = parse_evaluation(argv, prog)
    evaluate(config, output, command=shlex.join(["magicnaming", "evaluate", *argv]))
    return 0
