"""``magicnaming train fit|validate ... --config configs/train/<name>.yaml`` (LightningCLI) and
``magicnaming train export --checkpoint CKPT --output DIR``.

A training config is code: each ``class_path`` (the data module, the logger, the callbacks) is imported and run, so
run only configs you trust. ``--ckpt_path`` must be a local file (a checkpoint from a URL is refused: download it
and check it first) and is read with ``weights_only=True``, which unpickles nothing but tensors and plain values.
The config saved beside the run (``config.yaml``) is redacted (:func:`namespace.redaction.redacted`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import fsspec
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelSummary
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from namespace.help_format import PlainHelpFormatter
from namespace.redaction import redacted, redacted_url

from .export import export
from .lightning_log import lightning_info_to
from .module import NameEncoderModule
from .progress import EpochLines, wants_epoch_lines
from .resumable import ResumableDataModule

CONFIGS_ARE_CODE = (
    "A config is code: every class_path in it (data, logger, callbacks) is imported and run; run only configs you "
    "trust. --ckpt_path must be a local file (it is read with weights_only=True); the config saved with the run is "
    "redacted."
)
LIGHTNING_CHECKPOINTS = ("last", "best", "hpc")  # Lightning's own names for its checkpoints of this run


def check_checkpoint_path(ckpt_path: str | Path | None) -> None:
    """Raises ValueError naming ``--ckpt_path`` when it is not on this machine: a URL (``https://``, ``s3://``, ...)
    or Lightning's ``registry``. Lightning reads an ``http(s)`` checkpoint with ``weights_only=False``, unpickling
    whatever the server sends; a local file is the user's own choice, read with ``weights_only=True``.
    FileNotFoundError when a local path holds no file (before the data and the model load)."""
    if ckpt_path is None or str(ckpt_path) in LIGHTNING_CHECKPOINTS:
        return
    protocol, path = fsspec.core.split_protocol(str(ckpt_path))
    if protocol not in (None, "file", "local") or str(ckpt_path).split(":")[0] == "registry":
        raise ValueError(
            f"--ckpt_path: expected a checkpoint file on this machine (or {', '.join(LIGHTNING_CHECKPOINTS)}), got "
            f"{redacted_url(str(ckpt_path))!r}: a checkpoint is a pickle, and loading one from elsewhere can run its "
            "code; download it, check where it comes from, and give its local path"
        )
    if not Path(path).is_file():
        raise FileNotFoundError(f"--ckpt_path: expected a checkpoint file, found no file at {str(ckpt_path)!r}")


class RedactedConfig(SaveConfigCallback):
    """Saves the run's config (``<log_dir>/config.yaml``) redacted: a logger's API key, a URL's password or signed
    query never reach the file (:func:`namespace.redaction.redacted`)."""

    def setup(self, trainer: Trainer, pl_module, stage: str) -> None:
        if not self.already_saved:
            self.config = redacted(self.config.clone().as_dict())  # the parser saves a dict too
        super().setup(trainer, pl_module, stage)


class TrainingCLI(LightningCLI):
    """LightningCLI whose trainer prints a line per epoch instead of a progress bar into logs that are not
    terminals (see ``progress.wants_epoch_lines``), and whose INFO lines go to ``<default_root_dir>/lightning.log``.
    A local ``--ckpt_path`` only, read with ``weights_only=True`` unless the config says otherwise."""

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
            check_checkpoint_path(self.config[subcommand].get("ckpt_path"))
            if "weights_only" in self.config[subcommand] and self.config[subcommand].weights_only is None:
                self.config[subcommand].weights_only = True  # Lightning's None unpickles an http(s) checkpoint
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
    ``namespace.train.streaming_data.StreamingImageDataModule``). Configs are code (the module's docstring)."""
    return TrainingCLI(
        NameEncoderModule,
        ResumableDataModule,
        subclass_mode_data=True,
        args=args,
        run=run,
        parser_kwargs={"prog": prog, "formatter_class": PlainHelpFormatter, "description": CONFIGS_ARE_CODE},
        save_config_callback=RedactedConfig,
        save_config_kwargs={"overwrite": True},
    )


def main(argv: list[str], prog: str = "magicnaming train") -> int:
    if argv and argv[0] == "export":
        from namespace.command_line import run_command

        run_command(export, argv[1:], f"{prog} export")
        return 0
    training_cli(argv, prog)
    return 0
