"""``magicnaming train fit|validate ... --config configs/train/<name>.yaml`` (LightningCLI) and
``magicnaming train export --checkpoint CKPT --output DIR``."""

from __future__ import annotations

from lightning.pytorch.cli import LightningCLI

from .export import export
from .module import NameEncoderModule
from .resumable import ResumableDataModule


def training_cli(args: list[str], prog: str = "magicnaming train", run: bool = True) -> LightningCLI:
    """The LightningCLI over ``NameEncoderModule`` and either DataModule (``data.class_path``: the feature cache,
    ``namespace.train.cached_data.CachedFeatureDataModule``, or streaming images,
    ``namespace.train.streaming_data.StreamingImageDataModule``)."""
    return LightningCLI(
        NameEncoderModule,
        ResumableDataModule,
        subclass_mode_data=True,
        args=args,
        run=run,
        parser_kwargs={"prog": prog},
        save_config_kwargs={"overwrite": True},
    )


def main(argv: list[str], prog: str = "magicnaming train") -> int:
    if argv and argv[0] == "export":
        from jsonargparse import CLI

        CLI(export, args=argv[1:], prog=f"{prog} export", as_positional=False)
        return 0
    training_cli(argv, prog)
    return 0
