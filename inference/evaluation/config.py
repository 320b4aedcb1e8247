"""The settings of ``magicnaming evaluate``: plain, YAML-friendly dataclasses (``configs/eval/*.yaml``).

Only serializable values (strings, numbers, lists): ``dataclasses.asdict`` of an ``EvaluationConfig`` is what
``results.json`` records, and every check of these values lives in ``inputs.py`` (run before anything loads).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..generation_settings import GenerationSettings
from ..lora_baseline import LoraSettings
from ..refine import RefineSettings

Method = Literal["plain", "magicnaming", "ip_adapter", "refined", "lora"]
METHODS: tuple[str, ...] = ("plain", "magicnaming", "ip_adapter", "refined", "lora")


@dataclass
class ReferenceConfig:
    """One person to evaluate.

    Attributes:
        label: a short name for the person in file names and tables (letters, digits, ``-``, ``_``).
        photos: a folder of reference photos (MagicNaming's identity is made from them; IP-Adapter is given them).
        identity: an identity file instead of photos (MagicNaming only: IP-Adapter needs photos).
        name: the name the pipeline knows the person by (a celebrity's name for SDXL, a famous person's for the
            miniature world): the plain method puts it in the prompt; None: "a person" (the paper's SDXL row).
    """

    label: str
    photos: str | None = None
    identity: str | None = None
    name: str | None = None


@dataclass
class SweepConfig:
    """The δ/η trade-off: MagicNaming is also drawn at every (δ, η) of ``delta × eta``.

    Attributes:
        delta: name guidance values δ (eq. 4); empty: the configured δ only.
        eta: name norms η (eq. 5); empty: the configured η only.
    """

    delta: list[float] = field(default_factory=list)
    eta: list[float] = field(default_factory=list)


@dataclass
class IPAdapterConfig:
    """IP-Adapter, loaded with diffusers' own ``pipe.load_ip_adapter`` (the paper's peer).

    Attributes:
        weights: a folder or Hub id holding the adapter weights (None: IP-Adapter cannot be run).
        subfolder: the weights' subfolder in it.
        weight_name: the weights file (``.safetensors`` or ``.bin``).
        image_encoder: the CLIP image encoder's folder: a name inside ``subfolder`` (``image_encoder``) or a path
            from the weights' root (``models/image_encoder``), as ``load_ip_adapter``'s ``image_encoder_folder``.
        scale: the adapter's strength (``set_ip_adapter_scale``).
    """

    weights: str | None = None
    subfolder: str = "sdxl_models"
    weight_name: str = "ip-adapter_sdxl.safetensors"
    image_encoder: str = "image_encoder"
    scale: float = 0.6


@dataclass
class ScoringConfig:
    """How the images are scored ("auto": the miniature world's own judges on a miniature world, else the real ones).

    Attributes:
        text_image: an open_clip model for CLIP-TI (``ViT-L-14``), or ``attributes`` (the miniature world's attribute
            detectors: the share of images showing what the prompt asked, ×100, its CLIP-TI analogue); auto.
        text_image_pretrained: the open_clip weights tag or checkpoint of ``text_image`` (``openai``).
        identity: ``face`` (the face stack, namespace.faces) or ``judge`` (the miniature world's identity judge); auto.
        distance_features: the features FID and KID compare: ``inception`` (torchmetrics' Inception; its weights
            download on first use), ``encoder`` (the evaluated encoder's first CLIP tower), or an open_clip model
            name with ``distance_pretrained``; auto: inception, or encoder on a miniature world.
        distance_pretrained: the weights of an open_clip ``distance_features`` model.
        kid_subset_size: images per KID subset (capped at the smaller set's size).
    """

    text_image: str = "auto"
    text_image_pretrained: str | None = "openai"
    identity: str = "auto"
    distance_features: str = "auto"
    distance_pretrained: str | None = None
    kid_subset_size: int = 50


@dataclass
class EvaluationConfig:
    """Everything ``magicnaming evaluate`` draws: which encoder, pipeline, people, prompts, seeds and methods.

    Attributes:
        encoder: the name-encoder folder or Hub id.
        pipeline: an SDXL-family pipeline folder or Hub id, a miniature world folder (its ``pipeline/``), or
            ``miniature``: the default miniature world, built (minutes) or found in the cache.
        references: the people (photos or identity files, and the name the pipeline knows each by).
        reference_folders: a folder with one subfolder of photos per person (its name is the label; no name is
            known, so the plain method draws "a person"), added to ``references``.
        suite: a built-in prompt suite (``sdxl``, ``miniature``) or a suite YAML file.
        seeds: every prompt is drawn once per seed, with the same seeds for every method.
        methods: the methods drawn side by side.
        delta: MagicNaming's name guidance δ (None: the encoder's calibrated δ).
        eta: MagicNaming's name norm η (None: the encoder's mean training-name norm).
        sweep: further (δ, η) settings of MagicNaming, for the trade-off curve.
        ip_adapter: IP-Adapter's weights and scale.
        refine: the ``refined`` method's name refinement (steps, learning rate, prior weight, seed).
        lora: the ``lora`` method's DreamBooth-LoRA training (steps, rank, learning rate, batch size, seed, prompt).
        image_size: image side in pixels (None: the pipeline's default).
        num_inference_steps: denoising steps per image.
        guidance_scale: classifier-free guidance scale.
        step_window: (start, end) fractions of the steps in which MagicNaming applies the name (None: all).
        batch_size: images per pipeline call.
        check_faces: warn about reference photos with no face or several (off for drawings or the miniature
            world's synthetic people, which a face detector does not know).
        device: auto, cpu, cuda, cuda:1, ...
        devices: share the drawing over one process per device (``[cuda:0, cuda:1]``, ``[cpu, cpu]``), then
            score in this process on ``device``; None: one process, on ``device``. Under ``torchrun`` leave
            it out: the launch's processes share the drawing (docs/evaluation.md, "Many processes").
        dtype: auto (fp16 on GPU, fp32 on CPU), fp32, fp16 or bf16.
        scoring: the scorers (CLIP-TI or its analogue, identity, FID/KID features).
    """

    encoder: str
    pipeline: str
    references: list[ReferenceConfig] = field(default_factory=list)
    reference_folders: str | None = None
    suite: str = "sdxl"
    seeds: list[int] = field(default_factory=lambda: [0, 1])
    methods: list[Method] = field(default_factory=lambda: ["plain", "magicnaming"])
    delta: float | None = None
    eta: float | None = None
    sweep: SweepConfig = field(default_factory=SweepConfig)
    ip_adapter: IPAdapterConfig = field(default_factory=IPAdapterConfig)
    refine: RefineSettings = field(default_factory=RefineSettings)
    lora: LoraSettings = field(default_factory=LoraSettings)
    image_size: int | None = None
    num_inference_steps: int = 30
    guidance_scale: float = 5.0
    step_window: tuple[float, float] | None = None
    batch_size: int = 4
    check_faces: bool = True
    device: str = "auto"
    devices: list[str] | None = None
    dtype: str = "auto"
    scoring: ScoringConfig = field(default_factory=ScoringConfig)

    def generation(self, seed: int = 0) -> GenerationSettings:
        """How every method draws an image of ``seed``: the steps, guidance, ``image_size`` as height and width,
        the step window, and MagicNaming's configured δ and η (the sweep's settings replace them)."""
        window = tuple(self.step_window) if self.step_window is not None else None
        return GenerationSettings(
            num_inference_steps=self.num_inference_steps, guidance_scale=self.guidance_scale,
            height=self.image_size, width=self.image_size, delta=self.delta, eta=self.eta, step_window=window,
            seed=seed,
        )  # fmt: skip


__all__ = [
    "METHODS",
    "EvaluationConfig",
    "IPAdapterConfig",
    "Method",
    "ReferenceConfig",
    "ScoringConfig",
    "SweepConfig",
]
