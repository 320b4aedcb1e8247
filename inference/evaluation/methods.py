"""The methods compared side by side, on one pipeline, with the same prompts and seeds.

- ``plain``: the pipeline alone; ``{person}`` is the person's name where the pipeline knows it (the reference's
  ``name``), else "a person": the paper's SDXL row.
- ``magicnaming``: the plugin at the configured δ/η (and at every setting of the sweep); ``{person}`` is "a person"
  and the identity's name is prepended after the start token, as in the paper.
- ``ip_adapter``: diffusers' own ``pipe.load_ip_adapter`` and ``ip_adapter_image=`` (the paper's peer), given all of
  the person's reference photos (one adapter, several images: the same photos MagicNaming's identity averages);
  ``{person}`` is "a person". Its weights are loaded before its first batch and unloaded after its last, so the
  other methods draw with the pipeline as it was loaded.
- ``refined``: the plugin with each person's identity refined on their reference photos (``naming.refine`` with
  ``EvaluationConfig.refine``), once per person before their first batch; ``{person}`` is "a person".
- ``lora``: the paper's fine-tuning baseline, DreamBooth-LoRA (``lora_baseline``): a LoRA trained on the UNet's
  attention for each person (``EvaluationConfig.lora``), once, before their first batch, kept in memory and on the
  UNet only while their batches are drawn; ``{person}`` is DreamBooth's rare-token subject, "sks person".

Each method records the seconds a person's identity took it (``seconds_per_identity``): ``magicnaming`` the
encoder's (the identity made from the photos by ``prepare_people``), ``refined`` the encoder's and the refinement's
together, ``lora`` the LoRA's training. A person whose images were all drawn by an earlier run is not refined or
trained again, so has no time in this run.

A method draws a batch: several prompts of one person at one setting, one seed each, with the evaluation's
``GenerationSettings`` (``EvaluationConfig.generation``; a ``torch.Generator`` per image, so an image depends on its
prompt and seed only, not on its batch neighbours' noise).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass, replace

from PIL import Image

from namespace import Identity
from namespace.images import as_image_list

from ..generation_settings import GenerationSettings
from ..lora_baseline import LORA_SUBJECT, LoraSettings, lora_applied, train_identity_lora
from ..plugin import MagicNaming
from ..refine import RefineSettings
from .config import EvaluationConfig, IPAdapterConfig, SweepConfig
from .fingerprints import encoder_sha256, images_sha256, tensors_sha256
from .inputs import Reference

PERSON = "a person"  # the subject of a prompt whose person is not named in words


@dataclass(frozen=True)
class Setting:
    """MagicNaming's (δ, η), resolved to numbers; both None for methods without them.

    Attributes:
        default: whether this is the configured setting (the one the table reports; the sweep adds the others).
    """

    delta: float | None = None
    eta: float | None = None
    default: bool = True

    @property
    def slug(self) -> str:
        """A folder name: ``default``, or ``delta1.2-eta9.5``."""
        return "default" if self.delta is None and self.eta is None else f"delta{self.delta:g}-eta{self.eta:g}"

    def as_dict(self) -> dict:
        return {"delta": self.delta, "eta": self.eta, "default": self.default}


@dataclass
class Person:
    """A person ready to draw: the reference photos (decoded; empty for an identity file) and the identity (None when
    no method needs one).

    Attributes:
        references_sha256: hash of what the person was given by: the photos' pixels, else the identity file's
            embedding (``reference_fingerprint``); part of the settings an earlier image is reused by.
        identity_seconds: how long the encoder took to make the identity from the photos (None: given by a file,
            or not made).
    """

    label: str
    name: str | None
    photos: list[Image.Image]
    identity: Identity | None
    references_sha256: str = ""
    identity_seconds: float | None = None


def reference_fingerprint(photos: list[Image.Image], identity: Identity | None) -> str:
    """SHA-256 of a person's references: the photos' pixels, or the identity's (N, D) embedding without photos."""
    if photos or identity is None:
        return images_sha256(photos)
    return tensors_sha256({"name_embedding": identity.embedding})


def prepare_people(references: list[Reference], naming: MagicNaming | None, check_faces: bool = True) -> list[Person]:
    """Decodes the reference photos and, with ``naming``, makes each person's identity (photos → averaged name)."""
    people = []
    for reference in references:
        photos = as_image_list(reference.photos, f"{reference.label} photos") if reference.photos else []
        identity = reference.identity
        fingerprint = reference_fingerprint(photos, identity)  # before an identity is made from the photos
        seconds = None
        if identity is None and naming is not None:
            start = time.perf_counter()
            identity = naming.identity(photos, label=reference.label, check_faces=check_faces)
            seconds = time.perf_counter() - start
        people.append(Person(reference.label, reference.name, photos, identity, fingerprint, seconds))
    return people


class DrawingMethod:
    """One method: its settings, how it names the person in a prompt, and how it draws a batch.

    Attributes:
        name: the method's key (``plain``, ``magicnaming``, ``ip_adapter``, ``refined``, ``lora``).
        seconds_per_identity: person label → seconds spent making that person's identity for this method (methods
            with nothing to make per person leave it empty).
    """

    name = ""

    def __init__(self, pipe: object) -> None:
        self.pipe = pipe
        self.seconds_per_identity: dict[str, float] = {}

    def settings(self) -> list[Setting]:
        return [Setting()]

    def subject(self, person: Person) -> str:
        """What replaces ``{person}`` in this method's prompts."""
        return PERSON

    def describe(self, person: Person) -> dict:
        """Settings of the method and what it draws ``person`` from, written beside each of its images (beyond the
        job's own): an earlier image is reused only if they match."""
        return {}

    def open(self) -> None:
        """Called before the method's first batch."""

    def close(self) -> None:
        """Called after its last batch (also when drawing stops early)."""

    def draw(
        self, prompts: list[str], person: Person, setting: Setting, seeds: list[int], options: dict
    ) -> list[Image.Image]:
        """Draws ``prompts[i]`` with ``seeds[i]``; ``options``: the ``GenerationSettings`` fields every method shares
        (``drawing.generation_options``: steps, guidance, size, the step window when one is set)."""
        raise NotImplementedError


def call_arguments(options: dict, seeds: list[int], setting: Setting | None = None) -> dict:
    """One call's keywords (``GenerationSettings.call_arguments``) drawing image i with ``seeds[i]``: one CPU generator
    per image, so the same seed gives the same initial noise in every method and batch.

    Args:
        options: the shared ``GenerationSettings`` fields (``drawing.generation_options``).
        seeds: one per image of the call.
        setting: MagicNaming's (δ, η); None: a stock pipeline's call (no δ, η or step window).
    """
    settings = GenerationSettings(**options)
    if setting is not None:
        settings = replace(settings, delta=setting.delta, eta=setting.eta)
    arguments = settings.call_arguments()
    arguments["generator"] = [settings.call_arguments(seed)["generator"] for seed in seeds]
    if setting is None:
        arguments = {key: value for key, value in arguments.items() if key not in ("delta", "eta", "step_window")}
    return arguments


class PlainMethod(DrawingMethod):
    """The pipeline alone, the person named in words when the pipeline knows their name."""

    name = "plain"

    def subject(self, person: Person) -> str:
        return person.name or PERSON

    def draw(self, prompts, person, setting, seeds, options):
        return self.pipe(prompt=prompts, **call_arguments(options, seeds)).images


class MagicNamingMethod(DrawingMethod):
    """The plugin: the identity's name prepended after the start token, at each (δ, η) setting.

    Args:
        naming: the plugin on the evaluation's pipeline.
        delta, eta: the configured setting (None: the encoder's calibrated δ, its mean training-name norm η).
        sweep: more settings: every (δ, η) of ``sweep.delta × sweep.eta`` (an empty list: the configured value).
        encoder: where the encoder came from (folder or Hub id), written beside each image with the hash of the
            loaded encoder's weights (a folder re-exported in place holds other weights).
    """

    name = "magicnaming"

    def __init__(
        self,
        naming: MagicNaming,
        delta: float | None = None,
        eta: float | None = None,
        sweep: SweepConfig | None = None,
        encoder: str | None = None,
    ) -> None:
        super().__init__(naming.pipe)
        self.naming, self.encoder = naming, encoder
        self.encoder_sha256 = encoder_sha256(naming.encoder)
        self.delta = float(naming.delta if delta is None else delta)
        self.eta = float(naming.encoder.statistics.norm if eta is None else eta)
        self.sweep = sweep or SweepConfig()

    def settings(self) -> list[Setting]:
        """The configured setting first (``default``), then the sweep's others, each once."""
        grid = itertools.product(self.sweep.delta or [self.delta], self.sweep.eta or [self.eta])
        chosen = [Setting(self.delta, self.eta, True)]
        for delta, eta in grid:
            if (float(delta), float(eta)) not in [(s.delta, s.eta) for s in chosen]:
                chosen.append(Setting(float(delta), float(eta), False))
        return chosen

    def describe(self, person: Person) -> dict:
        return {"encoder": self.encoder, "encoder_sha256": self.encoder_sha256,
                "references_sha256": person.references_sha256}  # fmt: skip

    def draw(self, prompts, person, setting, seeds, options):
        if person.identity is None:
            raise ValueError(f"{self.name}: person {person.label!r} has no identity (prepare_people without naming?)")
        return self.naming(prompts, self.identity(person, options), **call_arguments(options, seeds, setting)).images

    def identity(self, person: Person, options: dict) -> Identity:
        """The identity ``person`` is drawn with: the encoder's (its time recorded)."""
        if person.identity_seconds is not None:
            self.seconds_per_identity[person.label] = person.identity_seconds
        return person.identity


class RefinedMethod(MagicNamingMethod):
    """The plugin with each person's identity refined on their photos (``naming.refine``), once per person, at the
    configured (δ, η) only (no sweep).

    Args:
        naming: the plugin on the evaluation's pipeline.
        refine: the refinement's steps, learning rate, prior weight and seed.
        delta, eta, encoder: as ``MagicNamingMethod``'s.
    """

    name = "refined"

    def __init__(
        self,
        naming: MagicNaming,
        refine: RefineSettings | None = None,
        delta: float | None = None,
        eta: float | None = None,
        encoder: str | None = None,
    ) -> None:
        super().__init__(naming, delta, eta, None, encoder)
        self.refine = refine or RefineSettings()
        self.refined: dict[str, Identity] = {}

    def describe(self, person: Person) -> dict:
        return super().describe(person) | {"refine": asdict(self.refine)}

    def identity(self, person: Person, options: dict) -> Identity:
        """The person's identity refined on their photos at the drawing's size (the first time; cached after); its
        time is the encoder's and the refinement's together (refinement starts from the encoder's prediction)."""
        if person.label not in self.refined:
            if not person.photos:
                raise ValueError(f"refined: person {person.label!r} has no reference photos (an identity file only)")
            config, start = self.refine, time.perf_counter()
            self.refined[person.label] = self.naming.refine(
                person.identity, person.photos, steps=config.steps, learning_rate=config.learning_rate,
                prior_weight=config.prior_weight, seed=config.seed, height=options.get("height"),
                width=options.get("width"),
            )  # fmt: skip
            encoding = person.identity_seconds or 0.0
            self.seconds_per_identity[person.label] = encoding + time.perf_counter() - start
        return self.refined[person.label]


class LoraMethod(DrawingMethod):
    """DreamBooth-LoRA (the paper's fine-tuning baseline): a LoRA trained for each person once, applied to the UNet
    only while that person's batches are drawn; the person is "sks person" in the prompts.

    Args:
        pipe: the evaluation's SDXL pipeline.
        settings: the LoRA's training (steps, rank, learning rate, batch size, seed, instance prompt).
    """

    name = "lora"

    def __init__(self, pipe: object, settings: LoraSettings | None = None) -> None:
        super().__init__(pipe)
        self.config = settings or LoraSettings()
        self.weights: dict[str, dict] = {}  # person label → the LoRA's weights (on the CPU)

    def subject(self, person: Person) -> str:
        return LORA_SUBJECT

    def describe(self, person: Person) -> dict:
        return {"lora": asdict(self.config), "references_sha256": person.references_sha256}

    def trained(self, person: Person, options: dict) -> dict:
        """The person's LoRA, trained on their photos at the drawing's size (the first time; cached after)."""
        if person.label not in self.weights:
            if not person.photos:
                raise ValueError(f"lora: person {person.label!r} has no reference photos (an identity file only)")
            start = time.perf_counter()
            self.weights[person.label] = train_identity_lora(
                self.pipe, person.photos, self.config, options.get("height"), options.get("width")
            )
            self.seconds_per_identity[person.label] = time.perf_counter() - start
        return self.weights[person.label]

    def draw(self, prompts, person, setting, seeds, options):
        weights = self.trained(person, options)
        with lora_applied(self.pipe, weights):
            return self.pipe(prompt=prompts, **call_arguments(options, seeds)).images


class IPAdapterMethod(DrawingMethod):
    """diffusers' IP-Adapter on the evaluation's pipeline, loaded only while its batches are drawn.

    Args:
        pipe: the evaluation's SDXL pipeline.
        settings: where the weights and the image encoder are, and the adapter's scale.
    """

    name = "ip_adapter"

    def __init__(self, pipe: object, settings: IPAdapterConfig) -> None:
        super().__init__(pipe)
        if settings.weights is None:
            raise ValueError("--ip_adapter.weights: ip_adapter needs its weights (a folder or Hub id)")
        self.config, self.loaded = settings, False

    def describe(self, person: Person) -> dict:
        config = self.config
        return {"ip_adapter": {"weights": config.weights, "subfolder": config.subfolder,
                               "weight_name": config.weight_name, "image_encoder": config.image_encoder,
                               "scale": config.scale},
                "references_sha256": person.references_sha256}  # fmt: skip

    def open(self) -> None:
        from namespace.progress import library_progress_bars_off

        config = self.config
        with library_progress_bars_off():  # the evaluation shows its own progress bar
            self.pipe.load_ip_adapter(
                config.weights, subfolder=config.subfolder, weight_name=config.weight_name,
                image_encoder_folder=config.image_encoder,
            )  # fmt: skip
        self.loaded = True
        self.pipe.set_ip_adapter_scale(config.scale)

    def close(self) -> None:
        if self.loaded:
            self.pipe.unload_ip_adapter()
            self.loaded = False

    def draw(self, prompts, person, setting, seeds, options):
        if not person.photos:
            raise ValueError(f"ip_adapter: person {person.label!r} has no reference photos (an identity file only)")
        # one adapter, given all of the person's photos: a list holding one list of images
        return self.pipe(prompt=prompts, ip_adapter_image=[person.photos], **call_arguments(options, seeds)).images


def build_methods(config: EvaluationConfig, pipe: object, naming: MagicNaming | None) -> list[DrawingMethod]:
    """The methods ``config.methods`` names, in that order, on ``pipe`` (``naming`` wraps it; needed for
    magicnaming)."""
    methods: list[DrawingMethod] = []
    for name in config.methods:
        if name == "plain":
            methods.append(PlainMethod(pipe))
        elif name == "magicnaming":
            if naming is None:
                raise ValueError("magicnaming: needs the plugin (MagicNaming(pipe, encoder)), got none")
            methods.append(MagicNamingMethod(naming, config.delta, config.eta, config.sweep, config.encoder))
        elif name == "ip_adapter":
            methods.append(IPAdapterMethod(pipe, config.ip_adapter))
        elif name == "refined":
            if naming is None:
                raise ValueError("refined: needs the plugin (MagicNaming(pipe, encoder)), got none")
            methods.append(RefinedMethod(naming, config.refine, config.delta, config.eta, config.encoder))
        elif name == "lora":
            methods.append(LoraMethod(pipe, config.lora))
        else:
            raise ValueError(f"--methods: expected plain, magicnaming, ip_adapter, refined or lora, got {name!r}")
    return methods


__all__ = [
    "PERSON",
    "DrawingMethod",
    "IPAdapterMethod",
    "LoraMethod",
    "MagicNamingMethod",
    "Person",
    "PlainMethod",
    "RefinedMethod",
    "Setting",
    "build_methods",
    "prepare_people",
    "reference_fingerprint",
]
