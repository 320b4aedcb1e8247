"""``magicnaming data build|names|match|...``: the LaionCele builder from the command line.

A data config is code: an embedder named ``module:function`` (``clean.identity_embedder``, ``clean.duplicate_embedder``,
``probe.embedder``) is imported and run, so build only with configs you trust. Keep credentials in the environment:
the manifest published with the dataset and the stage logs are redacted, but cannot know every secret."""

from __future__ import annotations

from pathlib import Path

from .build import STAGES, DataConfig
from .build import build as run_build


def build(output: str, data: DataConfig | None = None, scratch: Path | None = None) -> dict:
    """Builds a LaionCele directory: every stage in order; finished stages are skipped on a re-run.

    Args:
        output: the LaionCele directory, a local folder or an fsspec URL such as s3://bucket/laioncele
            (intermediate stage outputs go to OUTPUT/work).
        data: the build's settings (``configs/data/*.yaml``).
        scratch: for an fsspec output, the local folder the stages run in (default: a folder of the user cache
            keyed by the output URL); it needs the disk of a local build's work folder.
    """
    return run_build(data or DataConfig(), output, scratch=scratch)


def _stage_command(stage: str):
    def command(output: str, data: DataConfig | None = None, scratch: Path | None = None) -> dict:
        return run_build(data or DataConfig(), output, only=stage, scratch=scratch)

    command.__name__ = stage
    command.__doc__ = f"""Runs only the {stage} stage of a build in ``output`` (earlier stages must be finished there).

    Args:
        output: the LaionCele directory of the build (a local folder or an fsspec URL).
        data: the build's settings (``configs/data/*.yaml``).
        scratch: for an fsspec output, the local folder the stages run in.
    """
    return command


def read_config(path: str | Path) -> DataConfig:
    """Reads a ``configs/data/*.yaml`` file (its ``data:`` section) into a validated DataConfig."""
    from jsonargparse import ArgumentParser

    parser = ArgumentParser(exit_on_error=False, default_env=False)
    parser.add_argument("--data", type=DataConfig | None, default=None)
    parser.add_argument("--output", type=str | None, default=None)  # a YAML may name its output too
    parsed = parser.parse_path(str(path), defaults=True)
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
    return instantiate(parsed).data or DataConfig()


def main(argv: list[str], prog: str = "magicnaming data") -> int:
    from namespace.command_line import run_command

    commands = {"build": build, **{stage: _stage_command(stage) for stage in STAGES}}
    run_command(commands, argv, prog, description=__doc__)
    return 0
