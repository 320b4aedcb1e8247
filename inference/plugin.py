"""``MagicNaming(pipe, encoder)``: consistent identities in any SDXL-family diffusers pipeline.

Built on the pipeline's documented surface only: its text side (``namespace.text_sides``) makes the prompt
embeddings as the pipeline would, the name is guided (eq. 4), scaled (eq. 5) and prepended after the start token
(eq. 1), and the pipeline is called with ``prompt_embeds`` / ``negative_prompt_embeds`` and the family's other
conditioning. Nothing is registered on the pipeline and nothing runs per denoising step (unless a step window is
asked for), so CPU offload, LoRAs and schedulers work as usual.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Literal

import torch

import namespace as ns
from namespace import Identity, NameEncoder
from namespace.checks import check_delta, check_eta
from namespace.encoder.reference_crop import check_crop_mode, checked_references
from namespace.faces import CropMode
from namespace.fingerprint import DRIFT_THRESHOLD, drift, drift_warning
from namespace.images import ImageInput, as_image_list
from namespace.text_sides import NameSlice, text_side

from . import placeholders
from .step_window import StepWindowCallback, check_window, in_window

IdentityArgument = Identity | Sequence[Identity] | None


class MagicNaming:
    """The MagicNaming plugin for one pipeline and one name encoder.

    Args:
        pipe: any SDXL-family pipeline that takes prompt embeddings (text-to-image, img2img, inpainting, ControlNet,
            the refiner). It is used as it is: no module is registered on it.
        encoder: the trained name encoder (its statistics give F_mean, the default η and the default δ).
        delta: default name guidance δ (eq. 4); None: the δ calibrated when the encoder was trained
            (``encoder.statistics.delta``: it undoes the shrinkage of predicted names towards F_mean); 1.0 uses
            names as predicted.
        negative_name: ``"none"`` leaves the negative prompt embeddings as the pipeline made them; ``"mean"``
            prepends the mean name there, so classifier-free guidance pushes away from the average identity.
        filler: the word that stands in for a placeholder while a multi-person prompt is encoded.
    """

    def __init__(
        self,
        pipe: object,
        encoder: NameEncoder,
        delta: float | None = None,
        negative_name: Literal["none", "mean"] = "none",
        filler: str = "person",
    ) -> None:
        if not isinstance(encoder, NameEncoder):
            raise TypeError(f"encoder: expected a namespace.NameEncoder, got {type(encoder).__name__}")
        if negative_name not in ("none", "mean"):
            raise ValueError(f"negative_name: expected 'none' or 'mean', got {negative_name!r}")
        self.pipe, self.encoder = pipe, encoder
        self.text_side = text_side(pipe)
        self.name_slice = self.text_side.name_slice(pipe, encoder.config.width)
        self.delta, self.negative_name, self.filler = delta, negative_name, filler
        self.registry: dict[str, Identity] = {}
        # once per construction: 0 = the text encoders the names were learned on; None = no fingerprint recorded
        self.text_side_drift: float | None = self._text_side_drift()

    def _text_side_drift(self) -> float | None:
        """The pipeline's drift from the fingerprint of the text side whose names the encoder learned
        (``encoder.record["fingerprint"]``, ``namespace.fingerprint.drift``); warns above ``DRIFT_THRESHOLD``.

        None when no fingerprint is recorded, or when the pipeline takes part of the names (the refiner: the
        fingerprint covers all D channels). One text-encoder pass over the probe names.
        """
        recorded = self.encoder.record.get("fingerprint")
        if not recorded or self.name_slice.width != self.encoder.config.width:
            return None
        try:
            value = drift(recorded, self.pipe)
        except ValueError as error:
            warnings.warn(f"the encoder's text-side fingerprint was not compared: {error}", UserWarning, stacklevel=3)
            return None
        if value > DRIFT_THRESHOLD:
            warnings.warn(drift_warning(value), UserWarning, stacklevel=3)
        return value

    @property
    def delta(self) -> float:
        """The default δ: the one given, else the encoder's calibrated ``statistics.delta`` (read at use)."""
        return self.encoder.statistics.delta if self._delta is None else self._delta

    @delta.setter
    def delta(self, value: float | None) -> None:
        self._delta = None if value is None else check_delta(value)

    # -- identities --------------------------------------------------------------------------------------------------

    def identity(
        self,
        images: ImageInput | Sequence[ImageInput],
        label: str = "identity",
        crop: CropMode | None = None,
        check_faces: bool = True,
    ) -> Identity:
        """An identity from one or several reference images (their names are averaged); see ``reference_identity``.

        Args:
            images: reference photos of one person (PIL images, files, a folder, tensors).
            label: the identity's label.
            crop: crop each reference to its face first: none, loose or aligned (None: the encoder's
                ``reference_crop``, what it was trained with; another crop is allowed, with a warning).
            check_faces: with the face stack installed, warn about a reference with no face or several (False:
                no check, e.g. for drawings or synthetic people a face detector does not know).
        """
        return reference_identity(self.encoder, images, label, crop, check_faces=check_faces)

    def load(self, path: str, label: str | None = None) -> Identity:
        """An identity from an identity file made for this encoder's (N, D)."""
        identity = Identity.load(path, num_tokens=self.encoder.config.num_tokens, width=self.encoder.config.width)
        if label is not None:
            identity.label = label
        return identity

    def interpolate(
        self, a: Identity, b: Identity, t: float, method: Literal["lerp", "slerp"] = "lerp", label: str | None = None
    ) -> Identity:
        """A fictional identity between two others (t outside [0, 1] extrapolates); η-scaling happens at use.

        lerp by default, as in the paper: since every name is scaled to norm η at use (eq. 5), lerp walks the same
        arc as slerp (at another speed) and has no degenerate case for opposite names; see ``ns.interpolate``.
        """
        embedding = ns.interpolate(self._checked(a).embedding, self._checked(b).embedding, t, method=method)
        metadata = {"a": a.label, "b": b.label, "t": f"{t:g}", "method": method}
        return Identity(embedding, label or f"{a.label}-{b.label}-{t:g}", "interpolation", metadata=metadata)

    def mix(
        self, identities: Sequence[Identity], weights: Sequence[float] | None = None, label: str = "mix"
    ) -> Identity:
        """A weighted mix of several identities."""
        identities = [self._checked(identity) for identity in identities]
        embedding = ns.mix([identity.embedding for identity in identities], weights)
        metadata = {"parts": ",".join(i.label for i in identities), "weights": str(list(weights or []))}
        return Identity(embedding, label, "mix", metadata=metadata)

    def sample(self, num: int = 1, seed: int = 0, temperature: float = 1.0, label: str = "sampled") -> list[Identity]:
        """New identities drawn from the encoder's name-space statistics; see :meth:`Identity.sampled`."""
        return Identity.sampled(self.encoder.statistics, num, seed=seed, temperature=temperature, label=label)

    def identity_from_text(self, description: str, **options) -> Identity:
        """A consistent character from words alone; see :func:`namespace.inference.text_identity.identity_from_text`."""
        from .text_identity import identity_from_text

        return identity_from_text(self, description, **options)

    def identities_from_group(self, image: ImageInput, **options: object) -> list[Identity]:
        """One identity per face of a group photo, the leftmost first (each with its box and index in its metadata);
        see :func:`namespace.inference.group_identity.group_faces` (which also returns the crops)."""
        from .group_identity import group_faces

        return [face.identity for face in group_faces(self.encoder, image, **options)]

    def refine(
        self, identity: Identity | None, images: ImageInput | Sequence[ImageInput], **options: object
    ) -> Identity:
        """A name refined on reference photos by the frozen pipeline's denoising loss (None: start from the
        encoder's prediction); see :func:`namespace.inference.refine.refine_identity`."""
        from .refine import refine_identity

        return refine_identity(self, identity, images, **options)

    def register(self, label: str, identity: Identity) -> None:
        """Makes ``identity`` available to prompts as ``<label>`` (several people in one image, experimental)."""
        if not placeholders.PLACEHOLDER.fullmatch(f"<{label}>"):
            raise ValueError(f"label: expected letters, digits, '_' or '-' starting with a letter, got {label!r}")
        self.registry[label] = self._checked(identity)

    def _checked(self, identity: object, argument: str = "identity") -> Identity:
        return checked_identity(identity, self.encoder, argument)

    # -- names and prompt embeddings ---------------------------------------------------------------------------------

    def name(self, identity: Identity, delta: float | None = None, eta: float | None = None) -> torch.Tensor:
        """The (N, D') name this pipeline receives: eq. 4, eq. 5, then the pipeline's channels (``name_slice``)."""
        identity = self._checked(identity)
        delta = self.delta if delta is None else check_delta(delta)
        return pipeline_name(self.encoder, identity, self.name_slice, delta, eta)

    def prompt_embeds(
        self,
        prompt: str | list[str],
        identity: IdentityArgument = None,
        negative_prompt: str | list[str] | None = None,
        delta: float | None = None,
        eta: float | None = None,
        *,
        prompt_2: str | list[str] | None = None,
        negative_prompt_2: str | list[str] | None = None,
        num_images_per_prompt: int = 1,
        clip_skip: int | None = None,
    ) -> dict[str, torch.Tensor]:
        """Prompt embeddings with the identity's name in them, ready for ``pipe(**embeds, ...)``.

        Args:
            prompt: one prompt or a batch. ``<label>`` placeholders splice registered identities in (experimental).
            identity: one identity for every prompt, one per prompt, or None (the plain pipeline's embeddings).
            negative_prompt: as in diffusers.
            delta: name guidance δ (eq. 4); defaults to the plugin's.
            eta: name norm η (eq. 5); defaults to the encoder's mean training-name norm.
            prompt_2: the prompt for the second text encoder, as in diffusers.
            negative_prompt_2: the negative prompt for the second text encoder, as in diffusers.
            num_images_per_prompt: expands every tensor as the pipeline does.
            clip_skip: as in diffusers; names live in the penultimate layer, so other layers weaken them (warned).

        Returns:
            dict of the pipeline's prompt keywords, as its text side makes them: ``prompt_embeds`` (B·n, L, D'),
            ``negative_prompt_embeds`` and the conditioning the pipeline's family adds to them (see
            ``namespace.text_sides``).
        """
        named, _ = self._encode(
            prompt, identity, negative_prompt, delta, eta, prompt_2, negative_prompt_2, num_images_per_prompt, clip_skip
        )
        return named

    def _encode(self, prompt, identity, negative_prompt, delta, eta, prompt_2, negative_prompt_2, copies, clip_skip):
        """Returns the embeddings with names and the positive embeddings without (for step windows)."""
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if not prompts or not all(isinstance(p, str) for p in prompts):
            raise ValueError(f"prompt: expected a string or a non-empty list of strings, got {prompt!r}")
        if not isinstance(copies, int) or copies < 1:
            raise ValueError(f"num_images_per_prompt: expected a positive integer, got {copies!r}")
        if delta is not None:  # checked here too, before the text encoders run
            check_delta(delta)
        if eta is not None:
            check_eta(eta)
        identities = self._per_prompt(identity, len(prompts))
        parsed = [self._parse(p) for p in prompts]
        both = [i for i, (p, person) in enumerate(zip(parsed, identities, strict=True)) if p and person is not None]
        if both:
            raise ValueError(
                f"identity: prompt(s) {both} name people with <placeholders>, which take registered identities; "
                "pass identity=None for them (or drop the placeholders to prepend the identity)"
            )
        if clip_skip is not None and (any(i is not None for i in identities) or any(parsed)):
            warnings.warn(
                f"clip_skip={clip_skip}: names live in the penultimate text-encoder layer (clip_skip=None); "
                "prompt embeddings from another layer weaken the identity",
                UserWarning,
                stacklevel=3,
            )
        texts = [p.text if p else prompt for p, prompt in zip(parsed, prompts, strict=True)]
        options = {"prompt_2": prompt_2, "negative_prompt_2": negative_prompt_2}  # a family's own prompt keywords
        options = {key: value for key, value in options.items() if value is not None}
        encoded = self.text_side.encode(self.pipe, texts, negative_prompt, clip_skip, **options)
        embeds, negative = encoded.prompt_embeds, encoded.negative_prompt_embeds  # (B, L, D') each
        lengths = self.text_side.token_counts(self.pipe, texts)
        rows = []
        for index, (row, identity, parsed_prompt) in enumerate(zip(embeds, identities, parsed, strict=True)):
            if parsed_prompt:
                names = [self.name(self.registry[label], delta, eta).to(row) for label in parsed_prompt.labels]
                rows.append(placeholders.splice(row, parsed_prompt, names, lengths[index]))
            elif identity is not None:
                rows.append(ns.prepend(row[None], self.name(identity, delta, eta), [lengths[index]])[0])
            else:
                rows.append(row)
        named = torch.stack(rows)
        if self.negative_name == "mean":
            negative = ns.prepend(negative, mean_name(self.encoder, self.name_slice, eta))
        expand = (lambda t: t.repeat_interleave(copies, dim=0)) if copies > 1 else (lambda t: t)
        result = {key: expand(value) for key, value in encoded.replaced(named, negative).items()}
        return result, expand(embeds)

    def _per_prompt(self, identity: IdentityArgument, count: int) -> list[Identity | None]:
        if identity is None or isinstance(identity, Identity):
            identities = [identity] * count
        else:
            identities = list(identity)
            if len(identities) != count:
                raise ValueError(f"identity: expected one identity or {count} (one per prompt), got {len(identities)}")
        return [None if i is None else self._checked(i, f"identity[{n}]") for n, i in enumerate(identities)]

    def _parse(self, prompt: str) -> placeholders.PlaceholderPrompt | None:
        if not placeholders.has_placeholders(prompt):
            return None
        parsed = placeholders.parse(prompt, self.text_side.tokenizer(self.pipe), self.filler)
        unknown = sorted(set(parsed.labels) - set(self.registry))
        if unknown:
            known = ", ".join(f"<{label}>" for label in sorted(self.registry)) or "none (use naming.register)"
            raise ValueError(
                f"prompt: unknown placeholder(s) {', '.join(f'<{u}>' for u in unknown)}; registered: {known}"
            )
        return parsed

    # -- generation --------------------------------------------------------------------------------------------------

    def __call__(
        self,
        prompt: str | list[str],
        identity: IdentityArgument = None,
        negative_prompt: str | list[str] | None = None,
        delta: float | None = None,
        eta: float | None = None,
        step_window: tuple[float, float] | None = None,
        *,
        prompt_2: str | list[str] | None = None,
        negative_prompt_2: str | list[str] | None = None,
        num_images_per_prompt: int = 1,
        clip_skip: int | None = None,
        callback_on_step_end: Callable | None = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
        **pipeline_kwargs,
    ):
        """Generates with the pipeline; every other keyword (steps, guidance scale, image, mask, control image,
        generator, ...) goes to the pipeline unchanged.

        Args:
            step_window: (start, end) fractions of the denoising steps in which the name is applied; None applies it
                at every step (the paper; no per-step work).
        """
        named, plain = self._encode(
            prompt, identity, negative_prompt, delta, eta, prompt_2, negative_prompt_2, 1, clip_skip
        )
        tensor_inputs = list(callback_on_step_end_tensor_inputs or [])
        if step_window is not None:
            window = check_window(step_window)
            expand = lambda t: t.repeat_interleave(num_images_per_prompt, dim=0)  # noqa: E731 (as the pipeline does)
            callback = StepWindowCallback(window, expand(named["prompt_embeds"]), expand(plain), callback_on_step_end)
            if not in_window(0, 1, window):  # the window opens later: start without the name
                named = {**named, "prompt_embeds": plain}
            callback_on_step_end = callback
            tensor_inputs = sorted({*tensor_inputs, "prompt_embeds"})
        if callback_on_step_end is not None:
            pipeline_kwargs["callback_on_step_end"] = callback_on_step_end
            pipeline_kwargs["callback_on_step_end_tensor_inputs"] = tensor_inputs or ["latents"]
        return self.pipe(**named, num_images_per_prompt=num_images_per_prompt, **pipeline_kwargs)


def checked_identity(identity: object, encoder: NameEncoder, argument: str = "identity") -> Identity:
    """``identity`` if it is an Identity of the encoder's (N, D); else TypeError/ValueError naming ``argument``."""
    if not isinstance(identity, Identity):
        raise TypeError(f"{argument}: expected a namespace.Identity, got {type(identity).__name__}")
    expected = (encoder.config.num_tokens, encoder.config.width)
    if (identity.num_tokens, identity.width) != expected:
        raise ValueError(
            f"{argument} {identity.label!r} has shape (N, D) = {(identity.num_tokens, identity.width)}, but this "
            f"encoder's names are {expected}"
        )
    return identity


def pipeline_name(
    encoder: NameEncoder, identity: Identity, name_slice: NameSlice, delta: float, eta: float | None = None
) -> torch.Tensor:
    """The (N, D') name a pipeline receives: eq. 4 (guidance δ), eq. 5 (norm η), then the pipeline's channels.

    Shared by ``MagicNaming`` and the Modular Diffusers step (``namespace.inference.modular``).

    Args:
        encoder: the name encoder whose statistics give F_mean and the default η.
        identity: an identity of the encoder's (N, D) (see :func:`checked_identity`).
        name_slice: the channels the pipeline's prompt embeddings take (``TextSide.name_slice``).
        delta: name guidance δ, already checked (1.0: the name as predicted).
        eta: name norm η; None: the encoder's mean training-name norm.

    Returns:
        (N, D') float32 name on the encoder statistics' device.
    """
    return name_slice(guided_name(encoder, identity.embedding, delta, eta))


def guided_name(encoder: NameEncoder, embedding: torch.Tensor, delta: float, eta: float | None = None) -> torch.Tensor:
    """(N, D) eq. 4 then eq. 5 on an identity's embedding, all channels; differentiable (``refine`` optimises
    through it). The device is the encoder statistics' (float32 whatever the encoder's dtype, as identities are)."""
    statistics = encoder.statistics
    embedding = embedding.to(statistics.mean.device)
    if delta != 1.0:
        embedding = ns.guide(embedding, statistics.mean, delta)
    return ns.normalize(embedding, statistics.norm if eta is None else eta)


def mean_name(encoder: NameEncoder, name_slice: NameSlice, eta: float | None = None) -> torch.Tensor:
    """(N, D') the mean name F_mean at norm η (None: the encoder's): the negative side's ``negative_name="mean"``."""
    statistics = encoder.statistics
    return name_slice(ns.normalize(statistics.mean, statistics.norm if eta is None else eta))


def reference_identity(
    encoder: NameEncoder,
    images: ImageInput | Sequence[ImageInput],
    label: str = "identity",
    crop: CropMode | None = None,
    argument: str = "images",
    check_faces: bool = True,
) -> Identity:
    """An identity from reference photos: each checked for faces (with the face stack installed, a UserWarning names
    a reference with no face or several of comparable size) and cropped by ``crop``, with one detection per photo.

    Used by ``MagicNaming.identity`` and ``magicnaming identity encode``; ``argument`` names the images in warnings.
    """
    trained = encoder.config.reference_crop
    mode = trained if crop is None else crop
    check_crop_mode(mode, "crop")
    if mode != trained:
        warnings.warn(
            f"crop={mode!r}: this encoder was trained on references cropped {trained!r}; other crops give it "
            "inputs it has not seen (crop=None uses its own)",
            UserWarning,
            stacklevel=3,
        )
    references = as_image_list(images, argument)
    if check_faces or mode != "none":
        references = checked_references(references, mode, argument, warn=check_faces)
    identity = Identity.from_images(encoder, references, label=label, reference_crop="none")  # cropped just now
    if mode != "none":
        identity.metadata["reference_crop"] = mode
    return identity
