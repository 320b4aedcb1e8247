"""``magicnaming train fit|validate ... --config configs/train/<name>.yaml`` (LightningCLI) and
``magicnaming train export --checkpoint CKPT --output DIR``."""

from __future__ import annotations

import sys
from pathlib import Path

from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelSummary
from lightning.pytorch.cli import LightningCLI

from namespace.help_format import PlainHelpFormatter

from .export import export
from .lightning_log import lightning_info_to
from .module import NameEncoderModule
from .progress import EpochLines, wants_epoch_lines
from .resumable import ResumableDataModule


class TrainingCLI(LightningCLI):
    """LightningCLI whose trainer prints a line per epoch instead of a progress bar into logs that are not
    terminals (see ``progress.wants_epoch_lines``), and whose INFO lines go to ``<default_root_dir>/lightning.log``."""

    def parse_arguments(self, parser, args) -> None:
        # the arguments always come in `args` (magicnaming's dispatcher, the demo): sys.argv holds the same words
        # behind "train", which LightningCLI would warn about on every run
        argv, sys.argv = sys.argv, sys.argv[:1]
        try:
            super().parse_arguments(parser, args)
        finally:
            sys.argv = argv
        subcommand = self.config.get("subcommand")
        if subcommand is not None:  # fit, validate, test, predict: a run (not --help, not --print_config)
            settings = self.config[subcommand].get("trainer") or {}
            log = lightning_info_to(Path(settings.get("default_root_dir") or ".") / "lightning.log")
            print(f"Lightning's messages: {log}", flush=True)

    def instantiate_trainer(self, **kwargs) -> Trainer:
        settings = (self.config_init[self.subcommand] if self.subcommand else self.config_init).get("trainer") or {}
        callbacks = settings.get("callbacks") or []
        callbacks = callbacks if isinstance(callbacks, list) else [callbacks]
        extra = [EpochLines()] if wants_epoch_lines(settings) else []
        summary_wanted = settings.get("enable_model_summary") is not False
        if summary_wanted and not any(isinstance(callback, ModelSummary) for callback in callbacks):
            extra.append(ModelSummary())  # logs its table (to lightning.log), where Rich's would print it
        if extra:
            kwargs["callbacks"] = [*callbacks, *extra]
        return super().instantiate_trainer(**kwargs)


def training_cli(args: list[str], prog: str = "magicnaming train", run: bool = True) -> LightningCLI:
    """The LightningCLI over ``NameEncoderModule`` and either DataModule (``data.class_path``: the feature cache,
    ``namespace.train.cached_data.CachedFeatureDataModule``, or streaming images,
    ``namespace.train.streaming_data.StreamingImageDataModule``)."""
    return TrainingCLI(
        NameEncoderModule,
        ResumableDataModule,
        subclass_mode_data=True,
        args=args,
        run=run,
        parser_kwargs={"prog": prog, "formatter_class": PlainHelpFormatter},
        save_config_kwargs={"overwrite": True},
    )


def main(argv: list[str], prog: str = "magicnaming train") -> int:
    if argv and argv[0] == "export":
        from namespace.cli import run_command

        run_command(export, argv[1:], f"{prog} export")
        return 0
    training_cli(argv, prog)
    return 0
