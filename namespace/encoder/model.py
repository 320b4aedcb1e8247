"""The name encoder: frozen CLIP image towers → three linear layers → an (N, D) name embedding, plus the
name-space statistics (mean, mean norm, PCA, calibrated δ) it was trained with."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from ..checks import check_finite, check_state_fits
from ..faces.crop import CropMode
from ..files import atomic_folder
from ..images import ImageInput, as_image_list
from ..statistics import NameSpaceStatistics
from .config import NameEncoderConfig
from .head import NameHead
from .reference_crop import crop_references
from .tower_files import TOWERS_DIR, bundle_tower_checkpoints, resolve_tower_checkpoints
from .towers import ImageTower

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT = "magicnaming-encoder"
# version 2: the calibrated δ (``name_delta``) and local tower checkpoints copied into ``towers/``; version-1
# folders still load, with δ = 1 (eq. 4 off) and their tower paths as written. Version 3: ``record`` (where the
# weights come from: training data, run, version; see ``train/export.py``) and ``statistics`` (a summary of the
# statistics buffers for readers of config.json, such as the model card; the weights file holds the values used);
# version-2 folders load with an empty record
FORMAT_VERSION = 3
HUB_ID = re.compile(r"[\w.-]+/[\w.-]+")
# the name-space statistics stay float32 whatever dtype the encoder is cast to (``.half()``, ``.to(torch.bfloat16)``):
# they meet float32 identities in eq. 4 and 5, and fp16 would round F_mean and the PCA for nothing
FP32_BUFFERS = ("name_mean", "name_norm", "pca_components", "pca_variances", "name_delta")


class NameEncoder(nn.Module):
    """Predicts the name embedding of the person in an image.

    Args:
        config: architecture; the towers are referenced by open_clip name and tag, never copied into saved files.
        load_towers: build the CLIP towers. Training from cached tower features needs only the head: pass False.
    """

    def __init__(self, config: NameEncoderConfig | None = None, load_towers: bool = True) -> None:
        super().__init__()
        self.config = config = config or NameEncoderConfig()
        self.towers = nn.ModuleList([ImageTower(tower) for tower in config.towers]) if load_towers else None
        self.head = NameHead(config)
        num_tokens, width = config.num_tokens, config.width
        self.register_buffer("name_mean", torch.zeros(num_tokens, width))  # F_mean, eq. 4
        self.register_buffer("name_norm", torch.zeros(()))  # default η, eq. 5
        self.register_buffer("pca_components", torch.zeros(config.pca_rank, num_tokens * width))
        self.register_buffer("pca_variances", torch.zeros(config.pca_rank))
        self.register_buffer("statistics_count", torch.zeros((), dtype=torch.long))  # 0: not fitted yet
        self.register_buffer("name_delta", torch.ones(()))  # default δ, eq. 4: calibrated by training (1: off)
        # where the weights come from (plain JSON values, saved in config.json): training data, run, version
        self.record: dict = {}

    def _apply(self, fn, recurse: bool = True) -> NameEncoder:
        """Moves and casts like any module, but the statistics buffers keep float32 (see ``FP32_BUFFERS``)."""
        kept = {name: self._buffers[name] for name in FP32_BUFFERS}
        super()._apply(fn, recurse)
        for name, before in kept.items():
            after = self._buffers[name]
            if after.dtype != before.dtype:  # a cast: take the device move only, from the unrounded values
                self._buffers[name] = before.to(after.device)
        return self

    # -- inference -------------------------------------------------------------------------------------------------

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, F) concatenated tower embeddings (e.g. from the feature cache) → (B, N, D) names."""
        if features.ndim != 2 or features.shape[1] != self.config.feature_dim:
            raise ValueError(
                f"features: expected shape (B, {self.config.feature_dim}) (concatenated tower embeddings), "
                f"got {tuple(features.shape)}"
            )
        return self.head(features.to(self.head.layers[0].weight.dtype))

    def image_features(
        self, images: ImageInput | Sequence[ImageInput], reference_crop: CropMode | None = None
    ) -> torch.Tensor:
        """Runs the frozen towers: images → (B, F) float32 concatenated embeddings (no gradient).

        Each image is first cropped to its face as the encoder was trained (``config.reference_crop``; a tensor is
        made a PIL image for it); ``reference_crop`` overrides that (``"none"`` for references already cropped).
        """
        towers = self._require_towers()
        mode = self.config.reference_crop if reference_crop is None else reference_crop
        images = crop_references(as_image_list(images), mode)
        device = self.name_mean.device
        return torch.cat([tower(tower.pixels(images).to(device)) for tower in towers], dim=-1)

    def pixel_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """A (B, 3, H, W) batch in [0, 1] → (B, F) float32 embeddings; each tower resizes, crops and normalises the
        whole batch at once (the streaming trainer's path: its photos were cropped to the face, if at all, before
        augmentation, so nothing is cropped here)."""
        towers = self._require_towers()
        if pixels.ndim != 4 or pixels.shape[1] != 3:
            raise ValueError(f"pixels: expected a (B, 3, H, W) batch, got shape {tuple(pixels.shape)}")
        return torch.cat([tower(tower.tensor_preprocess(pixels)) for tower in towers], dim=-1)

    def attach_towers(self) -> None:
        """Builds the frozen towers of an encoder made with ``load_towers=False`` (on its device)."""
        if self.towers is None:
            self.towers = nn.ModuleList([ImageTower(tower) for tower in self.config.towers]).to(self.name_mean.device)

    @torch.no_grad()
    def encode(
        self, images: ImageInput | Sequence[ImageInput], batch_size: int = 16, reference_crop: CropMode | None = None
    ) -> torch.Tensor:
        """Encodes images into names.

        Args:
            images: PIL images, image file paths, (3, H, W) tensors in [0, 1], or a (B, 3, H, W) tensor.
            batch_size: images per tower forward pass.
            reference_crop: crop each image to its face first: none, loose or aligned (None: the encoder's
                ``config.reference_crop``, what it was trained with).

        Returns:
            (B, N, D) float32 names on the encoder's device (a half-precision head's output is cast up).
        """
        images = as_image_list(images)
        if batch_size < 1:
            raise ValueError(f"batch_size: expected a positive number, got {batch_size}")
        chunks = [
            self(self.image_features(images[i : i + batch_size], reference_crop))
            for i in range(0, len(images), batch_size)
        ]
        return torch.cat(chunks).float()

    def _require_towers(self) -> nn.ModuleList:
        if self.towers is None:
            raise RuntimeError("this NameEncoder was built with load_towers=False: it can only run on tower features")
        return self.towers

    # -- name-space statistics -------------------------------------------------------------------------------------

    @property
    def statistics(self) -> NameSpaceStatistics:
        """The name-space statistics stored with the encoder (raises if none were set)."""
        count = int(self.statistics_count)
        if count == 0:
            raise RuntimeError(
                "this encoder holds no name-space statistics yet (name_mean, name_norm, PCA): they are set by "
                "training export or set_statistics(NameSpaceStatistics.fit(names))"
            )
        rank = min(self.config.pca_rank, count - 1)
        return NameSpaceStatistics(
            mean=self.name_mean,
            norm=float(self.name_norm),
            components=self.pca_components[:rank],
            variances=self.pca_variances[:rank],
            count=count,
            delta=float(self.name_delta),
        )

    def set_statistics(self, statistics: NameSpaceStatistics) -> None:
        """Stores name-space statistics; their shape must match this encoder's (N, D)."""
        expected = (self.config.num_tokens, self.config.width)
        if tuple(statistics.mean.shape) != expected:
            raise ValueError(
                f"statistics: mean has shape {tuple(statistics.mean.shape)}, the encoder expects {expected}"
            )
        if not (math.isfinite(statistics.delta) and statistics.delta > 0):
            raise ValueError(f"statistics: delta must be a positive finite number, got {statistics.delta}")
        rank = statistics.components.shape[0]
        if rank > self.config.pca_rank:
            raise ValueError(
                f"statistics: {rank} PCA components, the encoder keeps at most pca_rank={self.config.pca_rank}"
            )
        # copies first: `statistics` may be views of these very buffers (``encoder.statistics``, edited and set back)
        components, variances = statistics.components.clone(), statistics.variances.clone()
        with torch.no_grad():
            self.name_mean.copy_(statistics.mean)
            self.name_norm.fill_(statistics.norm)
            self.pca_components.zero_()
            self.pca_variances.zero_()
            self.pca_components[:rank].copy_(components)
            self.pca_variances[:rank].copy_(variances)
            self.statistics_count.fill_(statistics.count)
            self.name_delta.fill_(statistics.delta)

    # -- files -----------------------------------------------------------------------------------------------------

    def exported_state(self) -> dict[str, torch.Tensor]:
        """Everything saved with the encoder: the head's weights and the statistics (the towers are referenced)."""
        return {name: tensor for name, tensor in self.state_dict().items() if not name.startswith("towers.")}

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Writes the encoder folder ``directory``: ``config.json``, ``model.safetensors`` and local tower
        checkpoints copied into ``towers/`` (named there by folder-relative paths: the folder loads from anywhere).

        The folder is written whole (``atomic_folder``): a killed save leaves the previous folder or none, never new
        weights beside an old config. An existing ``directory`` is replaced, with anything else it held; commands
        check ``--overwrite`` before they save.
        """
        return atomic_folder(directory, self._write_folder)

    def _write_folder(self, directory: Path) -> None:
        """Writes the folder's files into ``directory`` (a new, empty folder)."""
        towers = bundle_tower_checkpoints(self.config.towers, directory)
        config = {"format": FORMAT, "format_version": FORMAT_VERSION, **self.config.to_dict()}
        config["towers"] = [dataclasses.asdict(tower) for tower in towers]
        config["statistics"] = {
            "count": int(self.statistics_count),
            "name_norm": float(self.name_norm),
            "delta": float(self.name_delta),
        }
        if self.record:
            config["record"] = self.record
        state = {name: tensor.detach().cpu().contiguous() for name, tensor in self.exported_state().items()}
        save_file(state, str(directory / WEIGHTS_NAME), metadata={"format": FORMAT})
        (directory / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")

    @classmethod
    def from_pretrained(
        cls, path_or_id: str | os.PathLike, load_towers: bool = True, revision: str | None = None
    ) -> NameEncoder:
        """Loads an encoder folder written by :meth:`save_pretrained`, or downloads one from the Hugging Face Hub."""
        directory = _resolve_directory(path_or_id, revision)
        config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        for required in (config_path, weights_path):
            if not required.is_file():
                raise FileNotFoundError(
                    f"path_or_id: {str(directory)!r} has no {required.name} (not an encoder folder)"
                )
        config, version = _read_config(config_path)
        encoder = cls(config, load_towers=load_towers)
        encoder.record = read_record(config_path)
        state = load_file(str(weights_path))
        if version < 2:  # written before δ was calibrated: eq. 4 stays off, as it was
            state.setdefault("name_delta", torch.ones(()))
        encoder.load_exported_state(state, source=str(weights_path))
        return encoder

    def save_hub_folder(
        self,
        directory: str | os.PathLike,
        repo_id: str | None = None,
        license: str | None = None,
        card: str | None = None,
    ) -> Path:
        """Writes the encoder folder as :meth:`push_to_hub` uploads it: :meth:`save_pretrained` plus ``README.md``.

        Args:
            directory: the folder to write (replaced whole, as by :meth:`save_pretrained`).
            repo_id: the repository the card's usage snippet names.
            license: fills the card's licence (``model_card.LICENCE_TODO`` stays where None).
            card: the card to write instead of the one ``model_card`` writes from the saved ``config.json``.
        """
        from .model_card import CARD_NAME, model_card, with_licence

        def write(folder: Path) -> None:
            self._write_folder(folder)
            text = card if card is not None else model_card(folder, repo_id)
            (folder / CARD_NAME).write_text(with_licence(text, license) if license else text)

        return atomic_folder(directory, write)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        private: bool = True,
        token: str | None = None,
        license: str | None = None,
        card: str | None = None,
        commit_message: str = "Upload a MagicNaming name encoder",
    ) -> str:
        """Uploads the encoder to a Hugging Face Hub model repository, with its model card as ``README.md``.

        Everything is checked before the network is touched (the repository id, the licence, offline mode); the
        repository is created when missing (``exist_ok``); the folder of :meth:`save_hub_folder` is uploaded from a
        temporary directory.

        Args:
            repo_id: ``owner/name``.
            private: create the repository private (an existing repository keeps its visibility).
            token: a Hub token; None uses huggingface_hub's own login or ``HF_TOKEN``. Never printed or stored.
            license: the weights' licence (``apache-2.0``, ``mit``, ``other``, ...); required unless ``card`` has one.
            card: the model card to upload (default: ``model_card`` of the saved folder).
            commit_message: the commit's message.

        Returns:
            The repository's URL.
        """
        from .model_card import push_problems

        problems = push_problems(repo_id, license, card)
        if problems:
            raise ValueError("cannot push to the Hub:\n  " + "\n  ".join(problems))
        import tempfile

        from huggingface_hub import HfApi

        with tempfile.TemporaryDirectory(prefix="magicnaming-push-") as temporary:
            folder = self.save_hub_folder(Path(temporary) / "encoder", repo_id, license, card)
            api = HfApi(token=token)
            url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
            api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message=commit_message, repo_type="model")
        return str(url)

    def load_exported_state(self, state: dict[str, torch.Tensor], source: str = "state") -> None:
        """Loads head weights and statistics saved by :meth:`save_pretrained`; keys and shapes must match exactly."""
        check_state_fits(self.exported_state(), state, source, "this encoder config")
        for name, tensor in state.items():
            check_finite(tensor, f"{source}: {name}")
        self.load_state_dict(state, strict=False)


def read_config(path: Path) -> NameEncoderConfig:
    """Reads an encoder ``config.json``, refusing other formats and newer format versions; tower checkpoints kept in
    the folder come back as absolute paths."""
    return _read_config(path)[0]


def read_record(path: Path) -> dict:
    """The ``record`` of an encoder ``config.json`` (empty for folders written before it existed)."""
    record = json.loads(path.read_text()).get("record", {})
    if not isinstance(record, dict):
        raise ValueError(f"{path}: record must be an object, found {type(record).__name__}")
    return record


def _read_config(path: Path) -> tuple[NameEncoderConfig, int]:
    """The config of a ``config.json`` and its format version."""
    data = json.loads(path.read_text())
    found_format, version = data.pop("format", None), data.pop("format_version", None)
    data.pop("record", None)  # read_record's
    data.pop("statistics", None)  # a summary for readers: the weights file holds the statistics
    if found_format != FORMAT:
        raise ValueError(f"{path}: expected format {FORMAT!r}, found {found_format!r}")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{path}: format_version {version!r} is not supported (this version reads up to {FORMAT_VERSION})"
        )
    config = NameEncoderConfig.from_dict(data)
    config.towers = resolve_tower_checkpoints(config.towers, path.parent)
    return config, version


def _resolve_directory(path_or_id: str | os.PathLike, revision: str | None) -> Path:
    """A local folder as it is; an ``owner/name`` that is not a local path is a Hugging Face Hub repository."""
    path = Path(path_or_id).expanduser()
    if path.exists() or not HUB_ID.fullmatch(str(path_or_id)):
        if not path.is_dir():
            raise FileNotFoundError(f"path_or_id: {str(path)!r} is not a folder (nor a Hub id of the form owner/name)")
        return path
    from huggingface_hub import snapshot_download

    patterns = [CONFIG_NAME, WEIGHTS_NAME, f"{TOWERS_DIR}/*"]
    return Path(snapshot_download(str(path_or_id), revision=revision, allow_patterns=patterns))
