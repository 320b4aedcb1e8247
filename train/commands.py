"""``magicnaming train fit|validate ... --config configs/train/<name>.yaml`` (LightningCLI) and
``magicnaming train export --checkpoint CKPT --output DIR``."""

from __future__ import annotations

import logging

from lightning.pytorch import Trainer
from lightning.pytorch.cli import LightningCLI

from namespace.help_format import PlainHelpFormatter

from .export import export
from .module import NameEncoderModule
from .progress import EpochLines, wants_epoch_lines
from .resumable import ResumableDataModule


class TrainingCLI(LightningCLI):
    """LightningCLI whose trainer prints a line per epoch instead of a progress bar into logs that are not
    terminals (see ``progress.wants_epoch_lines``)."""

    def instantiate_trainer(self, **kwargs) -> Trainer:
        settings = (self.config_init[self.subcommand] if self.subcommand else self.config_init).get("trainer") or {}
        if wants_epoch_lines(settings):
            callbacks = settings.get("callbacks") or []
            kwargs["callbacks"] = [*(callbacks if isinstance(callbacks, list) else [callbacks]), EpochLines()]
        return super().instantiate_trainer(**kwargs)


def training_cli(args: list[str], prog: str = "magicnaming train", run: bool = True) -> LightningCLI:
    """The LightningCLI over ``NameEncoderModule`` and either DataModule (``data.class_path``: the feature cache,
    ``namespace.train.cached_data.CachedFeatureDataModule``, or streaming images,
    ``namespace.train.streaming_data.StreamingImageDataModule``)."""
    # Lightning prints through its own handler on the "lightning" logger and, when the root logger had handlers by
    # the time Lightning was imported (open_clip's logging.warning, an earlier stage in the same process, a user's
    # basicConfig), through the root's as well: every INFO line twice. Its records stop at its own handler.
    logging.getLogger("lightning").propagate = False
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
