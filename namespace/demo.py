"""``magicnaming demo``: the name-space core end to end on tiny, offline, random models.

Targets from the pipeline's own text encoders → name-space statistics → an encoder folder → identities from
reference images, sampling and interpolation → identity files → names prepended into prompt embeddings (eq. 4, 5,
1) → images from the plain SDXL pipeline fed those embeddings. The full demo (data pipeline, training, the plugin)
grows here as those stages land.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

TINY_MODELS_NOTE = (
    "Tiny random models produce noise images: this demo shows the machinery, not likenesses. Real results need the "
    "full-size configs (configs/encoder/sdxl.yaml), a trained encoder and SDXL weights."
)


def demo(
    output: Path = Path("demo-output"),
    prompts: list[str] | None = None,
    num_references: int = 3,
    interpolation_steps: int = 5,
    delta: float = 1.0,
    num_inference_steps: int = 4,
    image_size: int = 64,
    seed: int = 0,
) -> dict:
    """Runs the core demo and writes encoder/, identities/, grid.png and summary.json into ``output``.

    Args:
        output: folder for everything the demo writes.
        prompts: prompts to draw each identity in (default: three scenes).
        num_references: synthetic reference photos averaged into the first identity.
        interpolation_steps: identities on the slerp path between the two identities (ends included).
        delta: name guidance δ (eq. 4); 1 leaves names as predicted.
        num_inference_steps: denoising steps per image.
        image_size: image side in pixels (a multiple of 8).
        seed: seeds the models, the sampled identity and the image noise.
    """
    import namespace as ns
    from namespace.testing import FICTIONAL_NAMES, synthetic_face, tiny_name_encoder, tiny_sdxl_pipeline

    from .images import image_grid
    from .progress import Steps

    prompts = prompts or ["a portrait photo of a person", "a person riding a horse", "an oil painting of a person"]
    if interpolation_steps < 2:
        raise ValueError(f"interpolation_steps: expected at least 2 (both ends), got {interpolation_steps}")
    if image_size % 8:
        raise ValueError(f"image_size: expected a multiple of 8, got {image_size}")
    output = Path(output)
    (output / "identities").mkdir(parents=True, exist_ok=True)
    steps = Steps(total=6)
    started = time.perf_counter()

    steps.start("building the tiny SDXL pipeline and name encoder")
    pipe = tiny_sdxl_pipeline(seed=seed)
    encoder = tiny_name_encoder(seed=seed)

    steps.start(f"embedding {len(FICTIONAL_NAMES)} fictional names with the pipeline's own text encoders")
    targets = ns.name_embeddings(pipe, list(FICTIONAL_NAMES)).float()  # (M, N, D)
    encoder.set_statistics(ns.NameSpaceStatistics.fit(targets, rank=encoder.config.pca_rank))
    encoder.save_pretrained(output / "encoder")
    statistics = encoder.statistics

    steps.start("making identities: references, sampling, interpolation")
    references = [synthetic_face(identity=1, variant=v, size=96) for v in range(num_references)]
    for index, image in enumerate(references):
        image.save(output / "identities" / f"reference-{index}.png")
    alice = ns.Identity.from_images(encoder, references, label="alice", encoder_id=str(output / "encoder"))
    generator = torch.Generator().manual_seed(seed)
    sampled = ns.Identity(statistics.sample(1, generator=generator)[0], label="sampled", source="sampling")
    path = ns.interpolate(alice.embedding, sampled.embedding, torch.linspace(0, 1, interpolation_steps), "slerp")
    identities = [
        ns.Identity(name, label=f"interpolation-{i}", source="interpolation", metadata={"t": f"{t:.3f}"})
        for i, (name, t) in enumerate(zip(path, torch.linspace(0, 1, interpolation_steps).tolist(), strict=True))
    ]
    for identity in [alice, sampled, *identities]:
        identity.save(output / "identities" / f"{identity.label}.safetensors")

    steps.start(f"generating {len(identities)} identities × {len(prompts)} prompts")
    names = ns.normalize(
        ns.guide(torch.stack([i.embedding for i in identities]), statistics.mean, delta), statistics.norm
    )
    images = _generate(pipe, prompts, names, num_inference_steps, image_size, seed)  # rows: identities

    steps.start("checking the round trips")
    reloaded = ns.Identity.load(
        output / "identities" / "alice.safetensors", encoder.config.num_tokens, encoder.config.width
    )
    reloaded_encoder = ns.NameEncoder.from_pretrained(output / "encoder")
    checks = {
        "identity_file_round_trip_bit_identical": bool(torch.equal(reloaded.embedding, alice.embedding)),
        "encoder_round_trip_bit_identical": bool(
            torch.equal(reloaded_encoder.encode(references).mean(0), alice.embedding)
        ),
        "names_scaled_to_eta": bool(torch.allclose(names.flatten(1).norm(dim=1), torch.tensor(statistics.norm))),
    }

    steps.start("writing grid.png and summary.json")
    image_grid(images).save(output / "grid.png")
    summary = {
        "name_shape": list(targets.shape[1:]),
        "names_embedded": len(FICTIONAL_NAMES),
        "eta_mean_name_norm": statistics.norm,
        "pca_components": int(statistics.components.shape[0]),
        "identities": [identity.label for identity in [alice, sampled, *identities]],
        "prompts": prompts,
        "grid": "grid.png: rows are the interpolation steps from alice (top) to the sampled identity (bottom)",
        "checks": checks,
        "seconds": round(time.perf_counter() - started, 1),
        "note": TINY_MODELS_NOTE,
    }
    (output / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    steps.done(f"wrote {output}/ in {summary['seconds']} s. {TINY_MODELS_NOTE}")
    return summary


def _generate(pipe, prompts: list[str], names: torch.Tensor, num_inference_steps: int, size: int, seed: int):
    """Draws every name in every prompt through the pipeline's documented prompt-embedding inputs."""
    import namespace as ns

    with torch.no_grad():
        prompt_embeds, negative_embeds, pooled, negative_pooled = pipe.encode_prompt(prompts, negative_prompt=None)
    lengths = [len(ids) for ids in pipe.tokenizer(prompts).input_ids]
    rows = []
    for name in names:
        result = pipe(
            prompt_embeds=ns.prepend(prompt_embeds, name, prompt_lengths=lengths),
            pooled_prompt_embeds=pooled,
            negative_prompt_embeds=negative_embeds,
            negative_pooled_prompt_embeds=negative_pooled,
            num_inference_steps=num_inference_steps,
            height=size,
            width=size,
            generator=torch.Generator().manual_seed(seed),
        )
        rows.append(result.images)
    return rows


def main(argv: list[str], prog: str = "magicnaming demo") -> int:
    from jsonargparse import CLI

    summary = CLI(demo, args=argv, prog=prog, description=__doc__, as_positional=False)
    return 0 if all(summary["checks"].values()) else 1
