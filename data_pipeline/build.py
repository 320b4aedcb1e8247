"""``magicnaming data build``: every stage, in order, into one LaionCele directory.

``OUTPUT`` is a local folder or any fsspec URL (``s3://bucket/laioncele``: the stages then run in a local scratch
folder and each finished stage is uploaded, :class:`.storage.RemoteOutput`). ``OUTPUT/work/<stage>/`` holds each
stage's outputs; a finished stage is skipped on a re-run and a half-written one
redone. The long stages resume inside: the download through img2dataset's own incremental mode; the features, the
probe and the clean stage's shard embeddings from their last committed chunk (``chunks.py``). The LaionCele files
land at the top of ``OUTPUT``, ``manifest.json`` last.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from namespace.laioncele import FORMAT, FORMAT_VERSION, open_feature_cache, write_manifest
from namespace.progress import Steps
from namespace.redaction import redacted, redacted_url

from .assemble import AssembleConfig, assemble
from .clean import CleanConfig, clean, thresholds
from .download import DownloadConfig, download, shard_paths
from .embedders import clip_embeddings
from .features import FeatureConfig, extract_features
from .local_server import serve_folder
from .match import MatchConfig, match_files
from .names import build_names, load_names
from .plots import plot_funnel, plot_images_per_identity
from .probe import ProbeConfig, consistency_threshold, probe_names
from .sample import SampleConfig, generate_sample
from .shard_embeddings import embed_shards
from .stage_dirs import finished
from .stage_dirs import run_stage as run_stage_folder
from .storage import RemoteOutput, expand, file_name, is_remote
from .targets import TargetsConfig, compute_targets

STAGES = ("sample", "names", "match", "download", "features", "probe", "clean", "targets", "assemble")


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


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


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


class _StopAfter(Exception):
    """Raised after the one stage a ``build(..., only=...)`` call asked for."""


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
    try:
        return _build(config, store.scratch if store else Path(output), only, store)
    except _StopAfter as stop:
        return stop.args[0]


def _build(config: DataConfig, output: Path, only: str | None, store: RemoteOutput | None = None) -> dict:
    """The stages in ``output`` (a remote output's scratch folder: each finished stage is fetched from the store
    when it is not here, and uploaded when the store lacks it)."""
    work = output / "work"
    work.mkdir(parents=True, exist_ok=True)
    source = config.source
    if source.sample is None and (not source.captions or not source.name_lists):
        raise ValueError("source: give captions and name_lists, or sample (the embedded sample)")
    _check_thresholds(config)
    steps = Steps(total=len(STAGES))
    stages: dict[str, dict] = {}

    def run_stage(work: Path, name: str, body, resume_partial: bool = False) -> dict:
        if store is not None and not finished(work, name) and store.finished(name):
            store.fetch(name, work)  # finished elsewhere (another machine): its files, not its work again
        if only is not None and name != only and not finished(work, name):
            raise RuntimeError(
                f"the {only} stage needs the {name} stage's output in {work / name}: "
                f"run `magicnaming data {name}` (or `magicnaming data build`) first"
            )
        summary = run_stage_folder(work, name, body, resume_partial=resume_partial)
        if store is not None and not store.finished(name):
            store.upload(name, work)
        if name == only:
            raise _StopAfter(summary)
        return summary

    steps.start("sample: generating the embedded sample" if source.sample else "sample: (not used)")

    def make_sample(folder: Path) -> dict:
        if source.sample is None:
            return {"used": False}
        port = source.sample_port or _free_port()
        truth = generate_sample(folder, f"http://127.0.0.1:{port}/", source.sample)
        return {"used": True, "port": port, "rows": truth["rows"]}

    stages["sample"] = run_stage(work, "sample", make_sample)
    if source.sample is not None:  # the sample was written into sample.partial, then renamed
        sample_folder = work / "sample"
        captions = sorted(str(p) for p in sample_folder.glob("captions-*.parquet"))
        name_lists = [str(sample_folder / "names.txt")]
    else:
        captions = expand(source.captions, "source.captions", source.storage_options)
        name_lists = expand(source.name_lists, "source.name_lists", source.storage_options)

    steps.start(f"names: reading {len(name_lists)} name list(s)")
    stages["names"] = run_stage(
        work,
        "names",
        lambda folder: build_names(
            name_lists,
            folder,
            source.name_column,
            source.alias_column,
            config.names.min_tokens,
            config.names.extra_common_words,
            config.names.fold_accents,
            source.storage_options,
        ),
    )
    names = load_names(work / "names")

    steps.start(f"match: scanning {len(captions)} caption file(s)")
    stages["match"] = run_stage(
        work, "match", lambda folder: match_files(captions, names, config.match, folder, source.storage_options)
    )

    steps.start("download: img2dataset (its own output: work/download/download.log)")
    server = (
        serve_folder(work / "sample" / "images", stages["sample"]["port"])
        if source.sample
        else contextlib.nullcontext()
    )
    with server:
        stages["download"] = run_stage(
            work,
            "download",
            lambda folder: download(work / "match" / "matches.parquet", folder, config.download),
            resume_partial=True,
        )
    shards = shard_paths(work / "download")

    steps.start(f"features: {len(config.features.towers)} tower(s) over {len(shards)} shard(s)")
    stages["features"] = run_stage(
        work, "features", lambda folder: extract_features(shards, folder, config.features), resume_partial=True
    )
    keys, tower_features = open_feature_cache(work / "features")

    present = sorted(set(keys["identity_id"].to_pylist()))
    steps.start(f"probe: {len(present)} name(s) with photos")
    names_with_photos = names.filter(pa.compute.is_in(names["identity_id"], pa.array(present, pa.int32())))
    stages["probe"] = run_stage(
        work,
        "probe",
        lambda folder: probe_names(
            names_with_photos,
            folder,
            config.probe,
            config.pipeline,
            config.probe.embedder or config.clean.identity_embedder,
            config.features.towers,
            config.clean.face,
        ),
        resume_partial=True,  # its chunks of names survive a restart
    )

    face_rules = "face rules, " if config.clean.identity_embedder == "face" else ""
    steps.start(f"clean: near duplicates, {face_rules}identity checks, the at-least-N rule")

    def run_clean(folder: Path) -> dict:
        """Holds the keys and the face facts (a few numbers per photo); each embedder's (n, d) rows are memory maps
        of ``embeddings-NAME.npy`` in the stage folder, and the photos stream (``embed_shards``: one batch decoded
        at a time, a chunk committed per shard, resumed after a restart)."""
        # clip reuses the feature cache; the others stream over the shards (one face analysis per photo gives the
        # face embedder's rows and the face rules' facts)
        embeddings, facts = {}, None
        for name in sorted({config.clean.duplicate_embedder, config.clean.identity_embedder}):
            if name == "clip":
                embeddings[name] = clip_embeddings(tower_features, folder / "embeddings-clip.npy")
            else:
                embeddings[name], found = embed_shards(
                    name, shards, keys, config.clean.face, processes=config.clean.processes, folder=folder
                )
                facts = found if name == config.clean.identity_embedder else facts
        probe_table = pq.read_table(work / "probe" / "probe.parquet") if config.probe.enabled else None
        centroids = np.load(work / "probe" / "centroids.npy") if config.probe.enabled else None
        duplicates, identities = embeddings[config.clean.duplicate_embedder], embeddings[config.clean.identity_embedder]
        summary = clean(keys, duplicates, identities, probe_table, centroids, config.clean, folder, facts)
        if "min_consistency" in stages["probe"]:  # the probe's threshold, beside the clean stage's own
            probe = stages["probe"]
            summary["thresholds"]["min_consistency"] = {
                "value": probe["min_consistency"],
                "source": probe["min_consistency_source"],
            }
        return summary

    stages["clean"] = run_stage(work, "clean", run_clean, resume_partial=True)  # the embedders' chunks survive
    kept = pq.read_table(work / "clean" / "kept.parquet")

    kept_ids = sorted(set(kept["identity_id"].to_pylist()))
    steps.start(f"targets: name embeddings of {len(kept_ids)} identities")
    name_of = dict(zip(names["identity_id"].to_pylist(), names["name"].to_pylist(), strict=True))
    stages["targets"] = run_stage(
        work,
        "targets",
        lambda folder: compute_targets(
            kept_ids, [name_of[i] for i in kept_ids], config.pipeline, config.targets, folder
        ),
    )

    steps.start("assemble: splits, shards, identities, targets, features, figures")

    def run_assemble(folder: Path) -> dict:
        result = assemble(
            kept, shards, names, work / "targets" / "targets.safetensors", work / "features", config.assemble, folder
        )
        funnel = _funnel(stages, result)
        plot_funnel(funnel, folder / "funnel.png")
        plot_images_per_identity(result["images_per_identity"], folder / "images_per_identity.png")
        return {**result, "funnel": funnel}

    stages["assemble"] = run_stage(work, "assemble", run_assemble)
    manifest = _manifest(config, captions, name_lists, stages)
    _publish(work / "assemble", output, manifest, store)
    if not config.keep_work:
        shutil.rmtree(work)
        if store is not None:
            store.remove_work()
    destination = store.url if store else output
    steps.done(f"LaionCele written to {redacted_url(str(destination))}: {manifest['counts']['identities']} identities, "
               f"{sum(manifest['counts']['images'].values())} images")  # fmt: skip
    return manifest


def _funnel(stages: dict[str, dict], assembled: dict) -> list[tuple[str, int]]:
    match = stages["match"]["funnel"]
    clean_funnel = stages["clean"]["funnel"]
    return [
        ("caption rows", match["rows"]),
        ("captions naming one person", match["matched"]),
        ("photos downloaded", stages["download"]["downloaded"]),
        ("photos after duplicates", clean_funnel["photos"] - clean_funnel.get("near_duplicate", 0)),
        ("photos kept", clean_funnel["kept"]),
        ("identities kept", assembled["identities"]),
    ]


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
