"""``magicnaming evaluate --config configs/eval/<name>.yaml --output DIR``: the evaluation from the shell.

Every field of ``EvaluationConfig`` is an option at the top level (``--encoder``, ``--sweep.delta [0.5,1,2]``,
``--scoring.identity face``), and a YAML config holds the same keys.

Over several processes: ``--devices '[cuda:0, cuda:1]'`` spawns one drawing process per device, or
``torchrun --nproc_per_node 2 -m namespace.cli evaluate ...`` runs this command in each; either way the drawing is
shared and one process scores (``sharing.py``). Under torchrun only rank 0 writes the results; the others exit 0.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from jsonargparse import ActionConfigFile, ArgumentParser

from namespace.help_format import PlainHelpFormatter
from namespace.redaction import redacted_text

from .config import EvaluationConfig


def evaluation_parser(prog: str = "magicnaming evaluate") -> ArgumentParser:
    """The command's parser: ``--config``, every ``EvaluationConfig`` field, ``--output``."""
    parser = ArgumentParser(prog=prog, description=__doc__, formatter_class=PlainHelpFormatter, default_env=False)
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML file of these options (configs/eval/)")
    parser.add_class_arguments(EvaluationConfig, nested_key=None, fail_untyped=True)
    parser.add_argument(
        "--output", type=Path, required=True, help="the evaluation's folder (an unfinished evaluation there is resumed)"
    )
    parser.add_argument(
        "--overwrite",
        type=bool,
        default=False,
        help="replace a finished evaluation in --output, or write into another non-empty folder (images whose "
        "settings, encoder and reference hashes included, are unchanged are still reused)",
    )
    return parser


def parse_evaluation(argv: list[str], prog: str = "magicnaming evaluate") -> tuple[EvaluationConfig, Path, bool]:
    """The config, the output folder and ``--overwrite`` a command line asks for."""
    parser = evaluation_parser(prog)
    namespace = parser.parse_args(argv)
    output, overwrite = namespace.pop("output"), namespace.pop("overwrite")
    namespace.pop("config", None)
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes  # renamed in jsonargparse 4.49
    config = instantiate(namespace)
    fields = {key: config[key] for key in EvaluationConfig.__dataclass_fields__}
    return EvaluationConfig(**fields), Path(output), overwrite


def main(argv: list[str], prog: str = "magicnaming evaluate") -> int:
    from .run import evaluate

    config, output, overwrite = parse_evaluation(argv, prog)
    command = redacted_text(shlex.join(["magicnaming", "evaluate", *argv]))  # the report is shared: no signed URL
    evaluate(config, output, command=command, overwrite=overwrite)
    return 0
