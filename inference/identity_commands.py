"""``magicnaming identity encode|mix|sample|from_text``: make identity files."""

from __future__ import annotations

from pathlib import Path

import torch

from namespace import Identity

from .loading import load_encoder, load_pipeline
from .plugin import MagicNaming


def encode(encoder: str, images: list[Path], output: Path, label: str | None = None, device: str = "auto") -> Path:
    """Encodes reference images of one person into an identity file (their names are averaged).

    Args:
        encoder: name-encoder folder or Hub id.
        images: reference images.
        output: the identity file to write (.safetensors).
        label: the identity's label (default: the output file's name).
        device: auto, cpu, cuda, ...
    """
    identity = Identity.from_images(load_encoder(encoder, device), images, label=label or Path(output).stem)
    identity.encoder = encoder
    return _saved(identity, output)


def mix(identities: list[Path], output: Path, weights: list[float] | None = None, label: str | None = None) -> Path:
    """Mixes several identity files into one (weighted mean; weights default to equal).

    Args:
        identities: identity files of one encoder.
        output: the identity file to write.
        weights: one weight per identity; they need not sum to 1 (they are normalised).
        label: the identity's label (default: the output file's name).
    """
    from namespace import mix as mix_names

    if not identities:
        raise ValueError("identities: expected at least one identity file, got none")
    first = Identity.load(identities[0])
    parts = [first] + [Identity.load(p, num_tokens=first.num_tokens, width=first.width) for p in identities[1:]]
    metadata = {"parts": ",".join(part.label for part in parts), "weights": str(weights or [])}
    mixed = Identity(
        mix_names([p.embedding for p in parts], weights), label or Path(output).stem, "mix", metadata=metadata
    )
    return _saved(mixed, output)


def sample(
    encoder: str, output: Path, num: int = 1, seed: int = 0, temperature: float = 1.0, label: str = "sampled"
) -> list[Path]:
    """Samples new, fictional identities from the encoder's name-space statistics.

    Args:
        encoder: name-encoder folder or Hub id (must hold statistics, as exported by training).
        output: a folder; identity k is written as ``{label}-{k}.safetensors``.
        num: identities to sample.
        seed: seeds the sampling.
        temperature: spread around the mean name (1 = as in training; below 1 closer to the average person).
        label: label prefix.
    """
    from namespace import NameEncoder

    model = NameEncoder.from_pretrained(encoder, load_towers=False)
    generator = torch.Generator().manual_seed(seed)
    names = model.statistics.sample(num, generator=generator, temperature=temperature)
    paths = []
    for k, name in enumerate(names):
        metadata = {"seed": str(seed), "index": str(k), "temperature": str(temperature)}
        identity = Identity(name, f"{label}-{k}", "sampling", encoder=encoder, metadata=metadata)
        paths.append(_saved(identity, Path(output) / f"{label}-{k}.safetensors"))
    return paths


def from_text(
    encoder: str,
    pipeline: str,
    description: str,
    output: Path,
    num_candidates: int = 16,
    num_clusters: int = 3,
    seed: int = 0,
    num_inference_steps: int = 30,
    guidance_scale: float = 5.0,
    height: int | None = None,
    width: int | None = None,
    dtype: str = "auto",
    device: str = "auto",
) -> Path:
    """A consistent character from a description: generate candidates, encode, cluster (faiss), keep the most
    cohesive cluster's mean.

    Args:
        encoder: name-encoder folder or Hub id.
        pipeline: SDXL-family pipeline folder or Hub id.
        description: what the person looks like.
        output: the identity file to write.
        num_candidates: images generated.
        num_clusters: k-means clusters.
        seed: seeds the candidates and the clustering.
        num_inference_steps: denoising steps per candidate.
        guidance_scale: classifier-free guidance scale.
        height: candidate height (default: the pipeline's).
        width: candidate width (default: the pipeline's).
        dtype: auto, fp32, fp16 or bf16.
        device: auto, cpu, cuda, ...
    """
    naming = MagicNaming(load_pipeline(pipeline, "text2img", dtype, device), load_encoder(encoder, device))
    identity = naming.identity_from_text(
        description,
        num_candidates=num_candidates,
        num_clusters=num_clusters,
        seed=seed,
        label=Path(output).stem,
        num_inference_steps=num_inference_steps,
        guidance_scale=guidance_scale,
        height=height,
        width=width,
    )
    identity.encoder = encoder
    return _saved(identity, output)


def _saved(identity: Identity, output: Path) -> Path:
    path = identity.save(output)
    print(f"wrote {path} ({identity.source}, label {identity.label!r}, shape {tuple(identity.embedding.shape)})")
    return path


def main(argv: list[str], prog: str = "magicnaming identity") -> int:
    from jsonargparse import CLI

    CLI([encode, mix, sample, from_text], args=argv, prog=prog, description=__doc__, as_positional=False)
    return 0
