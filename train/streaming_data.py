"""Streaming images: webdataset over the LaionCele shards, augmented, through the frozen towers in the training loop.

Slower than the feature cache (the towers run on every photo of every epoch) but the photos are augmented (random
resized crop, flip) and nothing has to be precomputed. Shards are dealt whole to (rank, worker) slots, balanced by
their photo counts (``epoch_plan.deal_shards``), so each photo is read by exactly one process per epoch; which
shards a slot reads is fixed for the run (every epoch then has the same number of batches per rank) and their order
and the order of photos in the slot's shuffle buffer change every epoch. Ranks with fewer photos get padding batches
at the end of an epoch, so no rank waits forever in DDP. Corrupt photos (undecodable image, broken metadata, unknown
identity, truncated shard) are skipped and counted in ``train/skipped_samples``. Each photo is cropped to its face
before augmentation when the encoder's ``reference_crop`` says so, exactly as the feature cache and inference crop it
(``decode_photo``).
"""

from __future__ import annotations

import io
import json
import logging
import tarfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import torch
import webdataset as wds
from PIL import Image

from namespace.encoder.reference_crop import check_crop_mode, check_face_stack, crop_references
from namespace.faces import CropMode
from namespace.laioncele import FEATURE_KEYS, FEATURES, listed_shards

from .augment import augment, centre
from .epoch_plan import EpochPlan, deal_shards, epoch_random, plan_epoch
from .laioncele import LaionCele, read_laioncele
from .resumable import PlannedLoader, ResumableDataModule
from .slot_stream import Sample, SlotLayout, SlotStream

log = logging.getLogger(__name__)
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
OTHER_SPLIT: Sample = {}  # marks a photo of the shard that belongs to another split's stream


def count_shard_photos(data: LaionCele, shards: list[str]) -> dict[str, Counter]:
    """Photos per split in each shard: from ``features/keys.parquet`` when the build wrote it, else by reading the
    shards' metadata (the images themselves are not read)."""
    keys = data.folder / FEATURES / FEATURE_KEYS
    counts: dict[str, Counter] = {shard: Counter() for shard in shards}
    if keys.is_file():
        table = pq.read_table(keys, columns=["shard", "split"])
        for shard, split in zip(table["shard"].to_pylist(), table["split"].to_pylist(), strict=True):
            if shard in counts:
                counts[shard][split] += 1
        return counts
    for shard in shards:
        with tarfile.open(data.folder / shard) as archive:
            for member in archive:
                if member.isfile() and member.name.endswith(".json"):
                    counts[shard][json.loads(archive.extractfile(member).read()).get("split", "train")] += 1
    return counts


def decode_photo(data: bytes, reference_crop: CropMode) -> Image.Image:
    """A photo's bytes → the RGB image augmentation starts from: cropped to its face as the encoder's
    ``reference_crop`` says (the crop of the feature cache and of inference)."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    return crop_references([image], reference_crop, "encoder.reference_crop")[0]


class ShardImageStream(SlotStream):
    """The photos of one split, read from webdataset shards: (3, S, S) uint8 images, name rows and keys.

    Args:
        shards: shard paths; ``counts`` their photos of this split (the deal balances them).
        split: "train", "heldout" or "val" (the ``split`` of each photo's metadata).
        identity_rows: identity_id → row of the name targets.
        train: augment and shuffle (training) or centre-crop in a fixed order (validation).
        image_size: side of the crops (the towers then resize to their own input size).
        shuffle_buffer: photos held in each slot's shuffle buffer.
        crop_scale: the random crop covers this fraction of the photo's area.
        layout: batch size, seed, rank and workers (``SlotLayout``).
        reference_crop: the encoder's face crop, applied to each photo before augmentation.
    """

    def __init__(
        self,
        shards: list[Path],
        counts: list[int],
        split: str,
        identity_rows: dict[int, int],
        train: bool,
        image_size: int,
        shuffle_buffer: int,
        crop_scale: tuple[float, float],
        layout: SlotLayout,
        reference_crop: CropMode = "none",
    ) -> None:
        super().__init__(layout)
        self.shards, self.counts, self.split, self.identity_rows = shards, counts, split, identity_rows
        self.train, self.image_size, self.shuffle_buffer = train, image_size, shuffle_buffer
        self.crop_scale, self.reference_crop = crop_scale, reference_crop
        # fixed for the run, so every epoch has the same number of batches per rank
        self.dealt = deal_shards(counts, self.ranks * self.workers, self.seed, epoch=0, shuffle=train)

    def plan(self, epoch: int) -> EpochPlan:
        samples = [sum(self.counts[shard] for shard in shards) for shards in self.dealt]
        return plan_epoch(samples, self.ranks, self.workers, self.batch_size)

    def _decode(self, raw: dict, epoch: int) -> Sample | None:
        """A webdataset sample (bytes per extension) → a training sample, ``OTHER_SPLIT`` when it belongs to another
        split, or None when it is corrupt (broken metadata counts as corrupt in every split's stream)."""
        key = raw.get("__key__", "")
        try:
            metadata = json.loads(raw["json"])
            if metadata.get("split", "train") != self.split:
                return OTHER_SPLIT
            name_row = self.identity_rows[int(metadata["identity_id"])]
            data = next(raw[extension] for extension in IMAGE_EXTENSIONS if extension in raw)
            image = decode_photo(data, self.reference_crop)
            pixels = (
                augment(image, self.image_size, self.seed, epoch, key, scale=self.crop_scale)
                if self.train
                else centre(image, self.image_size)
            )
        except (KeyError, ValueError, TypeError, AttributeError, OSError, StopIteration) as error:
            log.warning("skipping corrupt sample %r in the %s stream: %s", key, self.split, error)
            return None
        return {"images": pixels, "name_row": name_row, "key": key}

    def slot_samples(self, slot: int, epoch: int) -> Iterator[Sample | None]:
        shards = list(self.dealt[slot])
        if not shards:  # more slots than shards: this one only pads
            return
        if self.train:
            epoch_random(self.seed, epoch, "order", slot).shuffle(shards)
        pipeline = wds.DataPipeline(
            wds.SimpleShardList([str(self.shards[shard]) for shard in shards]),
            wds.tarfile_to_samples(handler=self._shard_error),  # a truncated shard: the rest of it is missing
        )
        samples = (sample for sample in (self._decode(raw, epoch) for raw in pipeline) if sample is not OTHER_SPLIT)
        if not self.train:
            yield from samples
            return
        random, buffer = epoch_random(self.seed, epoch, "buffer", slot), []
        for sample in samples:
            buffer.append(sample)
            if len(buffer) >= self.shuffle_buffer:
                index = random.randrange(len(buffer))
                buffer[index], buffer[-1] = buffer[-1], buffer[index]
                yield buffer.pop()
        random.shuffle(buffer)
        yield from buffer

    @staticmethod
    def _shard_error(error: Exception) -> bool:
        log.warning("skipping the rest of a corrupt shard: %s", error)
        return True

    def padding_sample(self) -> Sample:
        return {"images": torch.zeros(3, self.image_size, self.image_size, dtype=torch.uint8), "name_row": 0, "key": ""}


class StreamingImageDataModule(ResumableDataModule):
    """Batches of augmented photos from the LaionCele shards; the module runs the frozen towers on them.

    Args:
        data_dir: a LaionCele directory (``train-*.tar``, ``val-*.tar``).
        batch_size: photos per batch (per process).
        num_workers: DataLoader workers per process (shards are dealt to them).
        image_size: crop side; the towers resize it to their input size (224 for the SDXL towers).
        shuffle_buffer: photos in each worker's shuffle buffer.
        crop_scale: (min, max) fraction of a photo's area the random crop keeps.
        seed: shuffles and crops derive from it.
    """

    provides = "images"

    def __init__(
        self,
        data_dir: str,
        batch_size: int = 64,
        num_workers: int = 4,
        image_size: int = 224,
        shuffle_buffer: int = 1000,
        crop_scale: tuple[float, float] = (0.6, 1.0),
        seed: int = 0,
    ) -> None:
        super().__init__()
        for name, value, least in (("batch_size", batch_size, 1), ("num_workers", num_workers, 0),
                                   ("image_size", image_size, 8), ("shuffle_buffer", shuffle_buffer, 1)):  # fmt: skip
            if value < least:
                raise ValueError(f"{name}: expected at least {least}, got {value}")
        if not 0 < crop_scale[0] <= crop_scale[1] <= 1:
            raise ValueError(f"crop_scale: expected 0 < min <= max <= 1, got {crop_scale}")
        self.data_dir, self.batch_size, self.num_workers = data_dir, batch_size, num_workers
        self.image_size, self.shuffle_buffer, self.crop_scale, self.seed = image_size, shuffle_buffer, crop_scale, seed
        self.data: LaionCele | None = None
        self.shards: dict[str, list[str]] = {}
        self.counts: dict[str, Counter] = {}
        self.reference_crop: CropMode = "none"

    def load(self, num_tokens: int, width: int, feature_dim: int, reference_crop: CropMode = "none") -> LaionCele:
        """Reads and checks the directory against the encoder and checks that every listed shard exists; photos
        will be cropped to the face as the encoder's ``reference_crop`` says."""
        check_crop_mode(reference_crop, "encoder.reference_crop")
        check_face_stack(reference_crop, "encoder.reference_crop")
        self.reference_crop = reference_crop
        if self.data is None:
            data = read_laioncele(self.data_dir, num_tokens, width)
            self.shards = listed_shards(data.manifest)
            missing = [name for names in self.shards.values() for name in names if not (data.folder / name).is_file()]
            if missing:
                raise FileNotFoundError(
                    f"data_dir: {data.folder} misses {len(missing)} shard(s) that manifest.json lists: {missing[:5]}"
                )
            if not self.shards["train"]:
                raise ValueError(f"data_dir: {data.folder} lists no train shards in manifest.json")
            self.counts = count_shard_photos(data, self.shards["train"] + self.shards["val"])
            self.data = data
        return self.data

    def _loader(self, kind: str, split: str, train: bool) -> PlannedLoader:
        if self.data is None:
            raise RuntimeError("StreamingImageDataModule.load() runs first (the NameEncoderModule calls it in setup)")
        names = self.shards[kind]
        stream = ShardImageStream(
            [self.data.folder / name for name in names],
            [self.counts[name][split] for name in names],
            split,
            self.data.identity_rows,
            train,
            self.image_size,
            self.shuffle_buffer,
            tuple(self.crop_scale),
            self.slot_layout(self.batch_size, self.num_workers, self.seed),
            self.reference_crop,
        )
        return self.planned_loader(stream, self.num_workers, self.seed, train)

    def train_dataloader(self) -> PlannedLoader:
        return self._loader("train", "train", train=True)

    def val_dataloader(self) -> list[PlannedLoader]:
        return [self._loader("val", "heldout", train=False), self._loader("val", "val", train=False)]
