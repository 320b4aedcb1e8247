"""``magicnaming encoder create|info|card|push``: make an (untrained) encoder folder from a config, describe a folder,
write its model card, or push it to the Hugging Face Hub."""

from __future__ import annotations

import json
from pathlib import Path

from ..files import check_new_output
from ..seeding import seeded
from .config import NameEncoderConfig
from .model import NameEncoder
from .model_card import CARD_NAME, model_card, push_problems


def create(output: Path, encoder: NameEncoderConfig | None = None, seed: int = 0, overwrite: bool = False) -> Path:
    """Writes a freshly initialised encoder folder (config.json + model.safetensors) without loading the towers.

    Args:
        output: folder to write.
        encoder: the architecture (configs/encoder/*.yaml); the full-size SDXL recipe by default.
        seed: seeds the head's initial weights.
        overwrite: replace an existing --output folder (otherwise refused).
    """
    check_new_output(output, "--output", overwrite, folder=True)
    with seeded(seed):
        model = NameEncoder(encoder or NameEncoderConfig(), load_towers=False)
    folder = model.save_pretrained(output)
    print(f"wrote {folder} ({_head_parameters(model):,} head parameters)")
    return folder


def info(path: str, load_towers: bool = False) -> dict:
    """Describes an encoder folder or Hub id: towers, (N, D), head size, statistics, record.

    Args:
        path: encoder folder (or Hub id).
        load_towers: also build the CLIP towers and check their widths (downloads full-size weights).
    """
    model = NameEncoder.from_pretrained(path, load_towers=load_towers)
    config = model.config
    summary = {
        "towers": [f"{t.model} ({t.pretrained or 'random'}, {t.embed_dim}, {t.precision})" for t in config.towers],
        "name_shape": [config.num_tokens, config.width],
        "hidden_dims": list(config.hidden_dims),
        "head_parameters": _head_parameters(model),
        "statistics_count": int(model.statistics_count),
        "name_norm": float(model.name_norm),
        "delta": float(model.name_delta),  # default name guidance δ (eq. 4), calibrated by training
    }
    if model.record:
        summary["record"] = model.record  # where the weights come from (training data, run, version)
    print(json.dumps(summary, indent=2))
    return summary


def card(
    encoder: Path,
    output: Path | None = None,
    repo_id: str | None = None,
    license: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Writes the model card of an encoder folder (a Hugging Face README.md, from its config.json alone), for you to
    read and complete (the licence) before ``magicnaming encoder push``.

    Args:
        encoder: the encoder folder.
        output: where to write the card (default: README.md in the encoder folder).
        repo_id: the Hub repository (owner/name) the card's usage snippet loads.
        license: the weights' licence (default: a TODO marker, which push refuses until it is filled in).
        overwrite: replace an existing card (otherwise refused).
    """
    output = Path(output) if output is not None else Path(encoder) / CARD_NAME
    check_new_output(output, "--output", overwrite)
    text = model_card(encoder, repo_id, license)  # checks the folder before anything is written
    output.write_text(text)
    print(f"wrote {output} ({'licence ' + license if license else 'licence still to fill in'})")
    return output


def push(
    encoder: Path,
    repo_id: str,
    private: bool = True,
    license: str | None = None,
    commit_message: str = "Upload a MagicNaming name encoder",
) -> str:
    """Uploads an encoder folder to a Hugging Face Hub model repository, with its model card.

    The card is the folder's README.md when it has one (written by ``magicnaming encoder card`` and completed by
    you), else one written now. The token comes from huggingface_hub's login (``hf auth login``) or ``HF_TOKEN``.
    Every problem (the folder, the repository id, an unset licence, offline mode) is reported before the network.

    Args:
        encoder: the encoder folder.
        repo_id: the Hub repository, owner/name (created when missing).
        private: create the repository private.
        license: the weights' licence (apache-2.0, mit, other, ...): fills the card's TODO marker.
        commit_message: the commit's message.
    """
    folder = Path(encoder)
    readme = folder / CARD_NAME
    text = readme.read_text() if readme.is_file() else None
    problems = [] if (folder / "config.json").is_file() else [f"--encoder: {str(folder)!r} is not an encoder folder"]
    problems += push_problems(repo_id, license, text)
    if problems:
        raise ValueError("cannot push to the Hub:\n  " + "\n  ".join(problems))
    print(f"reading {folder} ...", flush=True)
    model = NameEncoder.from_pretrained(folder, load_towers=False)
    source = f"its {CARD_NAME}" if text is not None else "a card written now"
    print(f"pushing to {repo_id} ({'private' if private else 'public'}, with {source}) ...", flush=True)
    url = model.push_to_hub(repo_id, private=private, license=license, card=text, commit_message=commit_message)
    print(f"pushed: {url}")
    return url


def _head_parameters(model: NameEncoder) -> int:
    return sum(parameter.numel() for parameter in model.head.parameters())


def main(argv: list[str], prog: str = "magicnaming encoder") -> int:
    from ..command_line import run_command

    run_command([create, info, card, push], argv, prog, description=__doc__)
    return 0


__all__ = ["card", "create", "info", "main", "push"]
