"""``magicnaming train fit|validate ... --config configs/train/<name>.yaml`` (LightningCLI) and
``magicnaming train export --checkpoint CKPT --output DIR``."""

from __future__ import annotations

from lightning.pytorch.cli import LightningCLI

from .cached_data import CachedFeatureDataModule
from .export import export
from .module import NameEncoderModule


def main(argv: list[str], prog: str = "magicnaming train") -> int:
    if argv and argv[0] == "export":
        from jsonargparse import CLI

        CLI(export, args=argv[1:], prog=f"{prog} export", as_positional=False)
        return 0
    LightningCLI(
        NameEncoderModule,
        CachedFeatureDataModule,
        args=argv,
        parser_kwargs={"prog": prog},
        save_config_kwargs={"overwrite": True},
    )
    return 0
