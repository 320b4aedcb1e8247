"""The methods compared side by side, on one pipeline, with the same prompts and seeds.

- ``plain``: the pipeline alone; ``{person}`` is the person's name where the pipeline knows it (the reference's
  ``name``), else "a person": the paper's SDXL row.
- ``magicnaming``: the plugin at the configured δ/η (and at every setting of the sweep); ``{person}`` is "a person"
  and the identity's name is prepended after the start token, as in the paper.
- ``ip_adapter``: diffusers' own ``pipe.load_ip_adapter`` and ``ip_adapter_image=`` (the paper's peer), given all of
  the person's reference photos (one adapter, several images: the same photos MagicNaming's identity averages);
  ``{person}`` is "a person". Its weights are loaded before its first batch and unloaded after its last, so the
  other methods draw with the pipeline as it was loaded.

A method draws a batch: several prompts of one person at one setting, one seed each, with the evaluation's
``GenerationSettings`` (``EvaluationConfig.generation``; a ``torch.Generator`` per image, so an image depends on its
prompt and seed only, not on its batch neighbours' noise).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

from PIL import Image

from namespace import Identity
from namespace.images import as_image_list

from ..generation_settings import GenerationSettings
from ..plugin import MagicNaming
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
    """

    label: str
    name: str | None
    photos: list[Image.Image]
    identity: Identity | None
    references_sha256: str = ""


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
        if identity is None and naming is not None:
            identity = naming.identity(photos, label=reference.label, check_faces=check_faces)
        people.append(Person(reference.label, reference.name, photos, identity, fingerprint))
    return people


class DrawingMethod:
    """One method: its settings, how it names the person in a prompt, and how it draws a batch.

    Attributes:
        name: the method's key (``plain``, ``magicnaming``, ``ip_adapter``).
    """

    name = ""

    def __init__(self, pipe: object) -> None:
        self.pipe = pipe

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
            raise ValueError(f"magicnaming: person {person.label!r} has no identity (prepare_people without naming?)")
        return self.naming(prompts, person.identity, **call_arguments(options, seeds, setting)).images


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
        else:
            raise ValueError(f"--methods: expected plain, magicnaming or ip_adapter, got {name!r}")
    return methods


__all__ = [
    "PERSON",
    "DrawingMethod",
    "IPAdapterMethod",
    "MagicNamingMethod",
    "Person",
    "PlainMethod",
    "Setting",
    "build_methods",
    "prepare_people",
    "reference_fingerprint",
]
