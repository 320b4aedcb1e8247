"""``magicnaming data build``: every stage, in order, into one LaionCele directory.

``OUTPUT`` is a local folder or any fsspec URL (``s3://bucket/laioncele``: the stages then run in a local scratch
folder and each finished stage is uploaded, :class:`.storage.RemoteOutput`). ``OUTPUT/work/<stage>/`` holds each
stage's outputs; a finished stage is skipped on a re-run and a half-written one
redone. The long stages resume inside: the download through img2dataset's own incremental mode; the features, the
probe and the clean stage's shard embeddings from their last committed chunk (``chunks.py``). The LaionCele files
land at the top of ``OUTPUT``, ``manifest.json`` last. The stages themselves, their inputs and outputs, are the table
of ``stages.py``; this module holds the build's settings and runs that table in one loop.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

from namespace.laioncele import FORMAT, FORMAT_VERSION, write_manifest
from namespace.progress import Steps
from namespace.redaction import redacted, redacted_url

from .assemble import AssembleConfig
from .clean import CleanConfig, thresholds
from .download import DownloadConfig
from .features import FeatureConfig
from .match import MatchConfig
from .probe import ProbeConfig, consistency_threshold
from .sample import SampleConfig
from .stage_dirs import finished
from .stage_dirs import run_stage as run_stage_folder
from .stages import STAGE_TABLE, STAGES, BuildState, Stage
from .storage import RemoteOutput, file_name, is_remote
from .targets import TargetsConfig


@dataclass
class SourceConfig:
    """Where the captions and names come from.

    Attributes:
        captions: LAION-style parquet files (globs allowed): local paths or fsspec URLs (``s3://bucket/part-*``).
        name_lists: name files (.txt, .csv, .tsv, .parquet), local or fsspec URLs.
        storage_options: the captions' and name lists' filesystem options (s3fs: ``endpoint_url``, ``key``,
            ``secret``, ``anon``, ...); the filesystem's own environment variables apply beneath them (the manifest
            records the config redacted, :func:`namespace.redaction.redacted`: keep credentials in the environment).
        name_column: the name column of CSV/parquet name lists.
        alias_column: their alias column (None: no aliases).
        sample: generate the embedded sample (served on 127.0.0.1) instead of reading ``captions``/``name_lists``.
        sample_port: the sample server's port (None: a free one, chosen once and kept for resumed builds).
    """

    captions: list[str] = field(default_factory=list)
    name_lists: list[str] = field(default_factory=list)
    name_column: str = "name"
    alias_column: str | None = "aliases"
    storage_options: dict = field(default_factory=dict)
    sample: SampleConfig | None = None
    sample_port: int | None = None


@dataclass
class NamesConfig:
    """Attributes:
    min_tokens: fewest words a name needs (single words are too ambiguous).
    extra_common_words: words added to the built-in common-word list.
    fold_accents: give every name and alias with accents its accent-folded form as one more alias, since captions
        often drop accents ("Beyonce" for "Beyoncé"). The cost: one more alias per accented name or alias (captions
        are not folded, so the scan costs the same), and a folded form that would name two people ("Jose Garcia"
        for "José García" when "Jose Garcia" is listed too) is dropped like any ambiguous alias, counted in the
        names stage's ``dropped`` as ``folded_alias_of_several_identities`` (``accent_folded_aliases``: those kept).
    """

    min_tokens: int = 2
    extra_common_words: list[str] = field(default_factory=list)
    fold_accents: bool = False


@dataclass
class DataConfig:
    """A whole LaionCele build.

    Attributes:
        source: captions and names, or the embedded sample.
        pipeline: the SDXL pipeline (Hub id or folder; ``tiny`` for the offline test pipeline) of the probe and
            the targets.
        names, match, download, features, probe, clean, targets, assemble: each stage's settings.
        keep_work: keep ``OUTPUT/work`` (intermediate stage outputs) after a successful build.
        output_storage_options: the output's filesystem options when it is an fsspec URL (as
            ``source.storage_options``).
    """

    source: SourceConfig = field(default_factory=SourceConfig)
    pipeline: str = "stabilityai/stable-diffusion-xl-base-1.0"
    names: NamesConfig = field(default_factory=NamesConfig)
    match: MatchConfig = field(default_factory=MatchConfig)
    download: DownloadConfig = field(default_factory=DownloadConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)
    clean: CleanConfig = field(default_factory=CleanConfig)
    targets: TargetsConfig = field(default_factory=TargetsConfig)
    assemble: AssembleConfig = field(default_factory=AssembleConfig)
    keep_work: bool = True
    output_storage_options: dict = field(default_factory=dict)


def _check_thresholds(config: DataConfig) -> None:
    """Every threshold taken from an embedder's calibration exists: raises before the first stage, not after the
    download."""
    thresholds(config.clean)
    probe_embedder = config.probe.embedder or config.clean.identity_embedder
    if (
        config.probe.enabled
        and config.clean.probe_threshold is not None
        and probe_embedder != config.clean.identity_embedder
    ):
        raise ValueError(
            f"clean.probe_threshold: compares each photo with the probe images' mean, but the probe embeds them with "
            f"{probe_embedder!r} (probe.embedder) and clean with {config.clean.identity_embedder!r}: use one embedder, "
            "or set clean.probe_threshold: null"
        )
    if config.probe.enabled:
        consistency_threshold(config.probe, config.probe.embedder or config.clean.identity_embedder, config.clean.face)


def build(config: DataConfig, output: str | Path, only: str | None = None, scratch: Path | None = None) -> dict:
    """Runs every stage (skipping finished ones) and writes the LaionCele directory; returns the manifest.

    Args:
        config: the build's settings.
        output: the LaionCele directory, a local folder or an fsspec URL; stage outputs go to
            ``output/work/<stage>``.
        only: run just this stage (its inputs must be finished stages in ``output/work``); returns its summary.
        scratch: for a remote output, the local folder the stages run in (None: a folder of the user cache keyed
            by the output URL, :func:`.storage.default_scratch`); it needs the disk of a local build's ``work/``.
    """
    if only is not None and only not in STAGES:
        raise ValueError(f"only: expected one of {', '.join(STAGES)}, got {only!r}")
    store = RemoteOutput(str(output), config.output_storage_options, scratch) if is_remote(output) else None
    return _build(config, store.scratch if store else Path(output), only, store)


def _build(config: DataConfig, output: Path, only: str | None, store: RemoteOutput | None = None) -> dict:
    """The stages of ``STAGE_TABLE`` in ``output``, in order (a remote output's scratch folder: each finished stage
    is fetched from the store when it is not here, and uploaded when the store lacks it); stops after ``only``."""
    work = output / "work"
    work.mkdir(parents=True, exist_ok=True)
    source = config.source
    if source.sample is None and (not source.captions or not source.name_lists):
        raise ValueError("source: give captions and name_lists, or sample (the embedded sample)")
    _check_thresholds(config)
    steps = Steps(total=len(STAGES))
    state = BuildState(config, work)
    for stage in STAGE_TABLE:
        steps.start(stage.describe(state))
        with stage.around(state):
            state.stages[stage.name] = _run_stage(stage, state, only, store)
        if stage.name == only:
            return state.stages[stage.name]
        stage.read(state)
    manifest = _manifest(config, state.captions, state.name_lists, state.stages)
    _publish(work / "assemble", output, manifest, store)
    if not config.keep_work:
        shutil.rmtree(work)
        if store is not None:
            store.remove_work()
    destination = store.url if store else output
    steps.done(f"LaionCele written to {redacted_url(str(destination))}: {manifest['counts']['identities']} identities, "
               f"{sum(manifest['counts']['images'].values())} images")  # fmt: skip
    return manifest


def _run_stage(stage: Stage, state: BuildState, only: str | None, store: RemoteOutput | None) -> dict:
    """One stage in ``state.work``, unless it is finished there (or in the store: then its files are fetched);
    returns its summary. A ``--only`` run refuses to redo an earlier stage that is not finished."""
    work, name = state.work, stage.name
    if store is not None and not finished(work, name) and store.finished(name):
        store.fetch(name, work)  # finished elsewhere (another machine): its files, not its work again
    if only is not None and name != only and not finished(work, name):
        raise RuntimeError(
            f"the {only} stage needs the {name} stage's output in {work / name}: "
            f"run `magicnaming data {name}` (or `magicnaming data build`) first"
        )
    summary = run_stage_folder(work, name, lambda folder: stage.run(state, folder), resume_partial=stage.resume_partial)
    if store is not None and not store.finished(name):
        store.upload(name, work)
    return summary


def _publish(assembled: Path, output: Path, manifest: dict, store: RemoteOutput | None) -> None:
    """Copies the assembled files to the top of ``output`` (or uploads them to the store) and writes
    ``manifest.json`` last; a store that holds this very manifest already is left as it is."""
    if store is not None:
        store.publish(assembled, manifest)
        return
    for path in sorted(assembled.iterdir()):
        if path.name.startswith("_"):
            continue
        target = output / path.name
        if target.is_dir():
            shutil.rmtree(target)
        shutil.copytree(path, target) if path.is_dir() else shutil.copy2(path, target)
    write_manifest(output, manifest)


def _manifest(config: DataConfig, captions: list[str], name_lists: list[str], stages: dict) -> dict:
    """The manifest: counts, shards, funnel, every stage's summary, the sources' file names and the config, all of it
    redacted (:func:`namespace.redaction.redacted`: it is published with the dataset)."""
    summary = stages["assemble"]
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "counts": {
            "identities": summary["identities"],
            "train_identities": summary["train_identities"],
            "val_identities": summary["val_identities"],
            "images": summary["images"],
            "name_shape": summary["name_shape"],
        },
        "shards": summary["shards"],
        "funnel": summary["funnel"],
        "stages": {
            name: {key: value for key, value in stages[name].items() if key != "images_per_identity"} for name in STAGES
        },
        "sources": {
            "captions": [file_name(c) for c in captions],
            "name_lists": [file_name(n) for n in name_lists],
        },
        "config": config,
    }
    return redacted(manifest)
