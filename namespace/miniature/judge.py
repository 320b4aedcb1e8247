"""An identity judge that is not the encoder: a stand-in for a face-recognition model in the miniature world.

A ``SmallConvNet`` trained by cosine-softmax identity classification (normalised class weights, scale 16: the idea
of the tiny towers' pre-training) on synthetic people outside every sample, each photographed with random scenes,
emotions and styles so that its embedding follows the person and ignores the prompt's attributes. It answers
"is this the same person?" (cosine against a threshold calibrated at the equal error rate on people it never saw)
and "which of these people is this?" (nearest enrolled person).
"""

from __future__ import annotations

import dataclasses
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..seeding import seeded
from .convnet import ConvNetConfig, SmallConvNet, TrainedNetConfig, augment, train_classifier
from .model_files import load_weights, read_model_folder, write_model_folder
from .pixels import Images, as_pixels
from .renders import render_people

FORMAT = "magicnaming-identity-judge"
FIRST_TRAINING_IDENTITY = 20_000  # people 20000 … 20999 train judges
FIRST_CALIBRATION_IDENTITY = 21_000  # people 21000 and up calibrate the threshold
MAX_PEOPLE = FIRST_CALIBRATION_IDENTITY - FIRST_TRAINING_IDENTITY
ATTRIBUTE_PRESENCE = 0.4  # each of scene, emotion, style, per training photo
SCALE = 16.0  # cosine-softmax temperature


@dataclass
class JudgeConfig(TrainedNetConfig):
    """How a judge was built and what its calibration found; round-trips through ``config.json``.

    Attributes:
        net: the trunk.
        people, photos, steps, batch_size, lr, seed: the training (see ``train_judge``).
        calibration_people, calibration_photos: held-out people (identities 21000 and up) the threshold is set on.
        same_person_threshold: the cosine at the equal error rate on those people; None until calibrated.
        equal_error_rate: the false accept (= false reject) rate there.
        training_seconds: wall time of ``train_judge``, rendering and calibration included.
    """

    net: ConvNetConfig = dataclasses.field(default_factory=ConvNetConfig)
    people: int = 300
    photos: int = 12
    steps: int = 600
    batch_size: int = 128
    lr: float = 3e-3
    seed: int = 0
    calibration_people: int = 100
    calibration_photos: int = 4
    same_person_threshold: float | None = None
    equal_error_rate: float | None = None
    training_seconds: float | None = None


@dataclass
class Enrolled:
    """Enrolled people: ``labels[i]`` is represented by the unit row ``embeddings[i]`` (L, dim)."""

    labels: list[str]
    embeddings: torch.Tensor


class CosineClassifier(nn.Module):
    """Logits ``SCALE · cos(feature, class weight)``: (B, dim) → (B, classes). Thrown away after training."""

    def __init__(self, dim: int, classes: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(0.1 * torch.randn(classes, dim))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return SCALE * nn.functional.normalize(features, dim=1) @ nn.functional.normalize(self.weight, dim=1).T


class IdentityJudge(nn.Module):
    """Embeds faces so that one person's photos point the same way, whatever the scene, emotion or style."""

    def __init__(self, config: JudgeConfig) -> None:
        super().__init__()
        self.config = config
        self.net = SmallConvNet(config.net)

    @property
    def image_size(self) -> int:
        return self.config.net.image_size

    @property
    def same_person_threshold(self) -> float:
        """Cosines at or above this say "same person" (the equal-error-rate point on held-out people)."""
        if self.config.same_person_threshold is None:
            raise RuntimeError("this judge is not calibrated: train it with train_judge (or load a trained one)")
        return self.config.same_person_threshold

    @torch.no_grad()
    def embed(self, images: Images) -> torch.Tensor:
        """PIL images (any size, resized) or a (B, 3, S, S) tensor in [-1, 1] → (B, dim) float32 unit rows."""
        pixels = as_pixels(images, self.image_size)  # (B, 3, S, S)
        return nn.functional.normalize(self.net(pixels), dim=1)

    def similarity(self, a: Images, b: Images) -> torch.Tensor:
        """(len(a), len(b)) cosines between the faces of ``a`` and ``b``."""
        return self.embed(a) @ self.embed(b).T

    def enroll(self, references: dict[str, Images]) -> Enrolled:
        """Each label's mean unit embedding over its reference images, renormalised."""
        if not references:
            raise ValueError("references: expected at least one label with images, got none")
        rows = []
        for label, images in references.items():
            embeddings = self.embed(as_pixels(images, self.image_size, argument=f"references[{label!r}]"))
            rows.append(nn.functional.normalize(embeddings.mean(dim=0), dim=0))
        return Enrolled(labels=list(references), embeddings=torch.stack(rows))  # (L, dim)

    def assign(self, images: Images, enrolled: Enrolled) -> list[str]:
        """The enrolled label nearest (by cosine) to each image."""
        embeddings = self.embed(images)  # (B, dim)
        if enrolled.embeddings.shape[1:] != embeddings.shape[1:]:
            raise ValueError(
                f"enrolled: expected embeddings of width {embeddings.shape[1]} (this judge's), "
                f"got {enrolled.embeddings.shape[1]}: enrolled by another judge?"
            )
        scores = embeddings @ enrolled.embeddings.T  # (B, L)
        return [enrolled.labels[i] for i in scores.argmax(dim=1).tolist()]

    def save(self, folder: str | os.PathLike) -> Path:
        """Writes ``config.json`` and ``model.safetensors`` into ``folder``."""
        return write_model_folder(folder, FORMAT, self.config.to_dict(), self.net)

    @classmethod
    def load(cls, folder: str | os.PathLike) -> IdentityJudge:
        """Reads a folder written by ``save``; FileNotFoundError names a missing folder or file."""
        config, state = read_model_folder(folder, FORMAT)
        judge = cls(JudgeConfig.from_dict(config))
        load_weights(judge.net, state, source=str(Path(folder)))
        return judge.eval()


def train_judge(
    image_size: int = 16, people: int = 300, photos: int = 12, steps: int = 600, seed: int = 0
) -> IdentityJudge:
    """Trains and calibrates a judge on people 20000 … 20000 + people − 1, each in ``photos`` photos whose scene,
    emotion and style are each present with probability 0.4.

    With the defaults (measured on one CPU thread of a busy 2-core machine): 23 s at image_size 16, 72 s at 32;
    equal error rate 3.0 % / 2.0 %; new photos of 10 enrolled outside people assigned right 99 % / 100 % of the
    time, of 50 people 95 % / 97 % (a random-weight judge: 19 % and 5 %).

    Args:
        image_size: the judge's input side (a multiple of 8); other images are resized to it.
        people: training identities, at most 1000 (21000 and up are the calibration's).
        photos: photos per person, rendered once.
        steps: optimisation steps of 128 photos.
        seed: seeds the weights, the attributes and the batches: the same seed gives the same judge.
    """
    if not 2 <= people <= MAX_PEOPLE or photos < 1 or steps < 1:
        raise ValueError(
            f"people, photos, steps: expected 2 ≤ people ≤ {MAX_PEOPLE}, photos ≥ 1, steps ≥ 1, "
            f"got {people}, {photos}, {steps}"
        )
    started = time.perf_counter()
    config = JudgeConfig(ConvNetConfig(image_size=image_size), people=people, photos=photos, steps=steps, seed=seed)
    renders = render_people(FIRST_TRAINING_IDENTITY, people, photos, image_size, seed, ATTRIBUTE_PRESENCE)
    with seeded(seed):
        judge = IdentityJudge(config)
        classes = CosineClassifier(config.net.dim, people)
    train_classifier(
        judge.net,
        {"identity": classes},
        renders.pixels,
        {"identity": renders.people},
        steps=steps,
        batch_size=config.batch_size,
        lr=config.lr,
        seed=seed,
        description=f"identity judge ({image_size} px)",
    )
    judge.eval()
    config.equal_error_rate, config.same_person_threshold = calibrate(judge, seed)
    config.training_seconds = round(time.perf_counter() - started, 1)
    return judge


def calibrate(judge: IdentityJudge, seed: int) -> tuple[float, float]:
    """The equal error rate and its threshold over all same/different pairs of the held-out calibration people,
    their renders degraded as in training (blur, noise): the judge scores generated images, which are softer than
    renders, and same-person pairs of soft images are less alike than of sharp ones."""
    config = judge.config
    renders = render_people(
        FIRST_CALIBRATION_IDENTITY, config.calibration_people, config.calibration_photos, judge.image_size,
        seed + 1, ATTRIBUTE_PRESENCE,
    )  # fmt: skip
    embeddings = judge.embed(augment(renders.pixels, torch.Generator().manual_seed(seed + 2)))  # (P, dim)
    cosines = embeddings @ embeddings.T  # (P, P)
    same = renders.people[:, None] == renders.people[None, :]
    upper = torch.ones_like(same).triu(diagonal=1)  # each pair once, no photo with itself
    return equal_error_rate(cosines[same & upper], cosines[~same & upper])


def equal_error_rate(same: torch.Tensor, different: torch.Tensor) -> tuple[float, float]:
    """The equal error rate of cosine scores and the threshold where it is reached.

    Args:
        same: (n,) scores of same-person pairs (a false reject is one below the threshold).
        different: (m,) scores of different-person pairs (a false accept is one at or above it).

    Returns:
        (rate, threshold): at the candidate threshold where false accepts and false rejects are closest, their mean.
    """
    candidates = torch.cat([same, different]).sort().values  # (n + m,)
    false_rejects = torch.searchsorted(same.sort().values, candidates, side="left") / len(same)
    false_accepts = 1 - torch.searchsorted(different.sort().values, candidates, side="left") / len(different)
    best = (false_accepts - false_rejects).abs().argmin()
    return ((false_accepts[best] + false_rejects[best]) / 2).item(), candidates[best].item()


def assignment_accuracy(
    judge: IdentityJudge, first_identity: int, people: int, references: int = 4, queries: int = 8, seed: int = 0
) -> float:
    """The fraction of new photos the judge assigns to the right one of ``people`` enrolled people.

    People ``first_identity`` … are enrolled from variants 0 … references − 1 and queried with the next ``queries``
    variants; every photo has random attributes (each present with probability 0.4).
    """
    size = judge.image_size
    enrolled = render_people(first_identity, people, references, size, seed, ATTRIBUTE_PRESENCE)
    asked = render_people(first_identity, people, queries, size, seed + 1, ATTRIBUTE_PRESENCE, first_variant=references)
    gallery = judge.enroll({str(p): enrolled.pixels[enrolled.people == p] for p in range(people)})
    answers = judge.assign(asked.pixels, gallery)
    return sum(answer == str(p) for answer, p in zip(answers, asked.people.tolist(), strict=True)) / len(answers)
