"""The stages of ``magicnaming data build`` as a table: each one a named function from what the earlier stages left
(:class:`BuildState`) to its own folder, with the progress line it shows and what later stages read of its output.

``build.py`` runs the table in one loop (skipping finished stages, fetching and uploading them for a remote output,
stopping after the one a ``--only`` run asks for); a stage here only does its own work:

=========  ====================================  ==================================  ===============================
stage      reads (BuildState)                    writes (``work/<stage>/``)          then read for the next stages
=========  ====================================  ==================================  ===============================
sample     config.source.sample                  images/, captions-*.parquet, ...    captions, name_lists
names      name_lists                            names.parquet, ...                  names
match      captions, names                       matches.parquet                     —
download   work/match/matches.parquet            webdataset shards, download.log     shards
features   shards                                the feature cache                   keys, tower_features, present
probe      names (those with photos: present)    probe.parquet, centroids.npy        —
clean      keys, tower_features, shards, probe   kept.parquet, dropped.parquet, ...  kept, kept_ids
targets    kept_ids, names                       targets.safetensors                 —
assemble   kept, shards, names, targets, ...     the LaionCele files, figures        —
=========  ====================================  ==================================  ===============================
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from namespace.laioncele import open_feature_cache

from .assemble import assemble
from .clean import clean
from .download import download, shard_paths
from .embedders import clip_embeddings
from .features import extract_features
from .local_server import serve_folder
from .match import match_files
from .names import build_names, load_names
from .plots import plot_funnel, plot_images_per_identity
from .probe import probe_names
from .sample import generate_sample
from .shard_embeddings import embed_shards
from .storage import expand
from .targets import compute_targets

if TYPE_CHECKING:
    from .build import DataConfig


@dataclass
class BuildState:
    """What the finished stages left for the next ones (each field set once its stage is finished).

    Attributes:
        config: the build's settings.
        work: ``OUTPUT/work``, one folder per stage.
        stages: every finished stage's summary, by name.
        captions, name_lists: the caption files and name lists (the sample's own, or ``config.source``'s expanded).
        names: the names stage's table (identity_id, name, aliases, ...).
        shards: the downloaded webdataset shards.
        keys: the feature cache's keys, one row per downloaded photo.
        tower_features: the feature cache's per-tower (n, d) features (memory maps).
        present: the identity ids with at least one downloaded photo, sorted.
        kept: the clean stage's kept photos.
        kept_ids: the identity ids with kept photos, sorted.
    """

    config: DataConfig
    work: Path
    stages: dict[str, dict] = field(default_factory=dict)
    captions: list[str] = field(default_factory=list)
    name_lists: list[str] = field(default_factory=list)
    names: pa.Table | None = None
    shards: list = field(default_factory=list)
    keys: pa.Table | None = None
    tower_features: dict | None = None
    present: list[int] = field(default_factory=list)
    kept: pa.Table | None = None
    kept_ids: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Stage:
    """One row of the table.

    Attributes:
        name: the stage's name (its folder ``work/<name>``, its ``magicnaming data <name>`` command).
        describe: the progress line shown as it starts.
        run: writes the stage's files into the folder it is given; returns its JSON-able summary.
        read: loads what the later stages need from the finished ``work/<name>`` into the state.
        resume_partial: keep a half-written folder (the stage resumes inside it, ``stage_dirs.run_stage``).
        around: a context the stage runs in, skipped or not (the download's local server of the sample).
    """

    name: str
    describe: Callable[[BuildState], str]
    run: Callable[[BuildState, Path], dict]
    read: Callable[[BuildState], None] = lambda state: None
    resume_partial: bool = False
    around: Callable[[BuildState], AbstractContextManager] = lambda state: contextlib.nullcontext()


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_sample(state: BuildState, folder: Path) -> dict:
    """The embedded sample (``sample.py``), served on 127.0.0.1 for the download; ``{"used": False}`` without it."""
    sample = state.config.source.sample
    if sample is None:
        return {"used": False}
    port = state.config.source.sample_port or _free_port()
    truth = generate_sample(folder, f"http://127.0.0.1:{port}/", sample)
    return {"used": True, "port": port, "rows": truth["rows"]}


def read_sources(state: BuildState) -> None:
    """The caption files and name lists: the sample's (written into sample.partial, then renamed), or the
    configured ones, globs expanded."""
    source = state.config.source
    if source.sample is not None:
        sample_folder = state.work / "sample"
        state.captions = sorted(str(p) for p in sample_folder.glob("captions-*.parquet"))
        state.name_lists = [str(sample_folder / "names.txt")]
    else:
        state.captions = expand(source.captions, "source.captions", source.storage_options)
        state.name_lists = expand(source.name_lists, "source.name_lists", source.storage_options)


def make_names(state: BuildState, folder: Path) -> dict:
    """The names and aliases of every name list (``names.py``)."""
    source, names = state.config.source, state.config.names
    return build_names(state.name_lists, folder, source.name_column, source.alias_column, names.min_tokens,
                       names.extra_common_words, names.fold_accents, source.storage_options)  # fmt: skip


def read_names(state: BuildState) -> None:
    state.names = load_names(state.work / "names")


def match_captions(state: BuildState, folder: Path) -> dict:
    """The captions naming exactly one person (``match.py``)."""
    config = state.config
    return match_files(state.captions, state.names, config.match, folder, config.source.storage_options)


def serve_sample(state: BuildState) -> AbstractContextManager:
    """The sample's photos on their port while the download stage runs (nothing to serve without the sample)."""
    if state.config.source.sample:
        return serve_folder(state.work / "sample" / "images", state.stages["sample"]["port"])
    return contextlib.nullcontext()


def download_photos(state: BuildState, folder: Path) -> dict:
    """The matched photos into webdataset shards (img2dataset, ``download.py``)."""
    return download(state.work / "match" / "matches.parquet", folder, state.config.download)


def read_shards(state: BuildState) -> None:
    state.shards = shard_paths(state.work / "download")


def extract_tower_features(state: BuildState, folder: Path) -> dict:
    """Every tower's features of every photo (``features.py``)."""
    return extract_features(state.shards, folder, state.config.features)


def read_features(state: BuildState) -> None:
    state.keys, state.tower_features = open_feature_cache(state.work / "features")
    state.present = sorted(set(state.keys["identity_id"].to_pylist()))


def probe_names_with_photos(state: BuildState, folder: Path) -> dict:
    """Whether the pipeline knows each name that has photos (``probe.py``)."""
    config, names = state.config, state.names
    with_photos = names.filter(pa.compute.is_in(names["identity_id"], pa.array(state.present, pa.int32())))
    embedder = config.probe.embedder or config.clean.identity_embedder
    return probe_names(with_photos, folder, config.probe, config.pipeline, embedder, config.features.towers,
                       config.clean.face)  # fmt: skip


def describe_clean(state: BuildState) -> str:
    face_rules = "face rules, " if state.config.clean.identity_embedder == "face" else ""
    return f"clean: near duplicates, {face_rules}identity checks, the at-least-N rule"


def clean_photos(state: BuildState, folder: Path) -> dict:
    """The clean stage (``clean.py``) on its embeddings: holds the keys and the face facts (a few numbers per photo);
    each embedder's (n, d) rows are memory maps of ``embeddings-NAME.npy`` in the stage folder, and the photos stream
    (``embed_shards``: one batch decoded at a time, a chunk committed per shard, resumed after a restart)."""
    config, work = state.config, state.work
    # clip reuses the feature cache; the others stream over the shards (one face analysis per photo gives the
    # face embedder's rows and the face rules' facts)
    embeddings, facts = {}, None
    for name in sorted({config.clean.duplicate_embedder, config.clean.identity_embedder}):
        if name == "clip":
            embeddings[name] = clip_embeddings(state.tower_features, folder / "embeddings-clip.npy")
        else:
            embeddings[name], found = embed_shards(
                name, state.shards, state.keys, config.clean.face, processes=config.clean.processes, folder=folder
            )
            facts = found if name == config.clean.identity_embedder else facts
    probe_table = pq.read_table(work / "probe" / "probe.parquet") if config.probe.enabled else None
    centroids = np.load(work / "probe" / "centroids.npy") if config.probe.enabled else None
    duplicates, identities = embeddings[config.clean.duplicate_embedder], embeddings[config.clean.identity_embedder]
    summary = clean(state.keys, duplicates, identities, probe_table, centroids, config.clean, folder, facts)
    probe = state.stages["probe"]
    if "min_consistency" in probe:  # the probe's threshold, beside the clean stage's own
        summary["thresholds"]["min_consistency"] = {
            "value": probe["min_consistency"],
            "source": probe["min_consistency_source"],
        }
    return summary


def read_kept(state: BuildState) -> None:
    state.kept = pq.read_table(state.work / "clean" / "kept.parquet")
    state.kept_ids = sorted(set(state.kept["identity_id"].to_pylist()))


def compute_name_targets(state: BuildState, folder: Path) -> dict:
    """The pipeline's name embeddings of every kept identity (``targets.py``)."""
    names = state.names
    name_of = dict(zip(names["identity_id"].to_pylist(), names["name"].to_pylist(), strict=True))
    names_kept = [name_of[i] for i in state.kept_ids]
    return compute_targets(state.kept_ids, names_kept, state.config.pipeline, state.config.targets, folder)


def assemble_laioncele(state: BuildState, folder: Path) -> dict:
    """The LaionCele files (``assemble.py``) and the build's two figures."""
    work = state.work
    result = assemble(state.kept, state.shards, state.names, work / "targets" / "targets.safetensors",
                      work / "features", state.config.assemble, folder)  # fmt: skip
    funnel = build_funnel(state.stages, result)
    plot_funnel(funnel, folder / "funnel.png")
    plot_images_per_identity(result["images_per_identity"], folder / "images_per_identity.png")
    return {**result, "funnel": funnel}


def build_funnel(stages: dict[str, dict], assembled: dict) -> list[tuple[str, int]]:
    """The build's funnel, from caption rows to identities kept (the manifest's and ``funnel.png``'s)."""
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


def _describe_sample(state: BuildState) -> str:
    return "sample: generating the embedded sample" if state.config.source.sample else "sample: (not used)"


STAGE_TABLE: tuple[Stage, ...] = (
    Stage("sample", _describe_sample, make_sample, read_sources),
    Stage("names", lambda s: f"names: reading {len(s.name_lists)} name list(s)", make_names, read_names),
    Stage("match", lambda s: f"match: scanning {len(s.captions)} caption file(s)", match_captions),
    Stage(
        "download",
        lambda s: "download: img2dataset (its own output: work/download/download.log)",
        download_photos,
        read_shards,
        resume_partial=True,
        around=serve_sample,
    ),
    Stage(
        "features",
        lambda s: f"features: {len(s.config.features.towers)} tower(s) over {len(s.shards)} shard(s)",
        extract_tower_features,
        read_features,
        resume_partial=True,
    ),
    Stage(
        "probe",
        lambda s: f"probe: {len(s.present)} name(s) with photos",
        probe_names_with_photos,
        resume_partial=True,  # its chunks of names survive a restart
    ),
    Stage("clean", describe_clean, clean_photos, read_kept, resume_partial=True),  # the embedders' chunks survive
    Stage("targets", lambda s: f"targets: name embeddings of {len(s.kept_ids)} identities", compute_name_targets),
    Stage("assemble", lambda s: "assemble: splits, shards, identities, targets, features, figures", assemble_laioncele),
)
STAGES = tuple(stage.name for stage in STAGE_TABLE)

__all__ = ["STAGES", "STAGE_TABLE", "BuildState", "Stage", "build_funnel"]
