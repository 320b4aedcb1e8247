"""The model card of an encoder folder (the ``README.md`` of a Hugging Face repository), and the checks a push to
the Hub passes before it touches the network.

The card is written from ``config.json`` alone: the towers, (N, D), the name-space statistics summary, and the
encoder's ``record`` (the training data, the run, magicnaming's version; a text-side fingerprint when one is
recorded). No weights are loaded. The licence is the owner's choice: the card holds ``LICENCE_TODO`` where it goes,
and a push refuses a card that still holds it (``magicnaming encoder push --license ...`` fills it in).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

CARD_NAME = "README.md"
LICENCE_TODO = "TODO-choose-a-licence"
BASE_MODEL = "stabilityai/stable-diffusion-xl-base-1.0"  # the text side whose names SDXL encoders learn
TAGS = ("magicnaming", "sdxl", "identity")
REPO_ID_PLACEHOLDER = "YOUR-NAME/YOUR-ENCODER"
FRONT_MATTER = re.compile(r"\A---\n(.*?)\n---\n", re.DOTALL)


def model_card(encoder_folder: str | Path, repo_id: str | None = None, license: str | None = None) -> str:
    """A Hugging Face model card for an encoder folder, from its ``config.json`` alone.

    Args:
        encoder_folder: a folder written by ``NameEncoder.save_pretrained``.
        repo_id: the Hub repository the card's usage snippet loads (a placeholder when None).
        license: the licence identifier for the front matter (``LICENCE_TODO`` when None, for the owner to fill in).

    Returns:
        The card: YAML front matter, then what the encoder is, how to use it, its towers, statistics, training
        record, fingerprint (when recorded), licence and responsible use.
    """
    config = read_card_facts(Path(encoder_folder))
    record = config.get("record") or {}
    licence = license or LICENCE_TODO
    parts = [
        _front_matter(licence),
        _introduction(config, repo_id),
        _usage(repo_id or REPO_ID_PLACEHOLDER),
        _towers(config["towers"]),
        _statistics(config),
        _training(record),
    ]
    if record.get("fingerprint"):
        shown = {key: value for key, value in record["fingerprint"].items() if key != "vectors"}  # 512 numbers
        parts.append(_section("Text-side fingerprint", _facts(shown)))
    parts += [_licence(licence), _responsible_use()]
    return "\n\n".join(parts) + "\n"


def read_card_facts(folder: Path) -> dict:
    """``config.json`` of an encoder folder, with ``statistics`` read from ``model.safetensors``'s three scalars
    when the config predates its summary (format version 2 and older: no weights are read)."""
    from .model import CONFIG_NAME, FORMAT, WEIGHTS_NAME

    path = folder / CONFIG_NAME
    if not folder.is_dir() or not path.is_file():
        raise FileNotFoundError(f"--encoder: {str(folder)!r} is not an encoder folder (no {CONFIG_NAME})")
    config = json.loads(path.read_text())
    if config.get("format") != FORMAT:
        raise ValueError(f"--encoder: {path} holds format {config.get('format')!r}, expected {FORMAT!r}")
    if "statistics" not in config and (folder / WEIGHTS_NAME).is_file():
        from safetensors import safe_open

        with safe_open(str(folder / WEIGHTS_NAME), framework="pt") as weights:
            names = set(weights.keys())
            scalar = {
                key: weights.get_tensor(key).item()
                for key in ("statistics_count", "name_norm", "name_delta")
                if key in names
            }
        config["statistics"] = {
            "count": int(scalar.get("statistics_count", 0)),
            "name_norm": scalar.get("name_norm"),
            "delta": scalar.get("name_delta", 1.0),  # version 1: eq. 4 off
        }
    return config


def card_licence(card: str) -> str | None:
    """The ``license`` of a card's YAML front matter (None when it has none)."""
    found = FRONT_MATTER.match(card)
    metadata = yaml.safe_load(found.group(1)) if found else None
    value = metadata.get("license") if isinstance(metadata, dict) else None
    return None if value is None else str(value)


def with_licence(card: str, license: str) -> str:
    """``card`` with ``license`` in place of every ``LICENCE_TODO`` and in its front matter's ``license`` field."""
    card = card.replace(LICENCE_TODO, license)
    found = FRONT_MATTER.match(card)
    if found is None:
        return _front_matter(license) + "\n\n" + card
    metadata = found.group(1)
    line = f"license: {license}"
    metadata = (
        re.sub(r"^license:.*$", line, metadata, count=1, flags=re.M)
        if re.search(r"^license:", metadata, flags=re.M)
        else f"{metadata}\n{line}"
    )
    return f"---\n{metadata}\n---\n" + card[found.end() :]


def push_problems(repo_id: str, license: str | None, card: str | None) -> list[str]:
    """Everything that stops a push, found without the network: the repository id, the licence, offline mode.

    Args:
        repo_id: ``owner/name``.
        license: the licence given for the push (fills the card's ``LICENCE_TODO``).
        card: the card to upload (None: one written by ``model_card``, which needs ``license``).
    """
    from huggingface_hub import constants
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    problems = []
    try:
        if not isinstance(repo_id, str) or repo_id.count("/") != 1:
            raise HFValidationError("the owner is required")
        validate_repo_id(repo_id)  # the Hub's own rules, checked without the network
    except HFValidationError as error:
        problems.append(f"--repo_id: expected owner/name, got {repo_id!r} ({error})")
    if license is not None and not re.fullmatch(r"[\w.+-]+", license):
        problems.append(f"--license: expected a licence identifier such as apache-2.0, mit or other, got {license!r}")
    elif license is None:
        if card is None:
            problems.append("--license: the licence is unset: choose one (apache-2.0, mit, openrail++, other, ...)")
        elif LICENCE_TODO in card or card_licence(card) in (None, ""):
            problems.append(
                f"--license: the card's licence is unset ({LICENCE_TODO} is still in it): fill it in, or pass "
                "--license (apache-2.0, mit, openrail++, other, ...)"
            )
    if constants.HF_HUB_OFFLINE:
        problems.append("HF_HUB_OFFLINE is set: pushing to the Hub needs the network (unset it to push)")
    return problems


# -- the card's parts ---------------------------------------------------------------------------------------------


def _front_matter(licence: str) -> str:
    todo = "  # for you to fill in: the weights' licence" if licence == LICENCE_TODO else ""
    tags = "".join(f"\n- {tag}" for tag in TAGS)
    return f"---\nlibrary_name: magicnaming\nlicense: {licence}{todo}\nbase_model: {BASE_MODEL}\ntags:{tags}\n---"


def _section(title: str, body: str) -> str:
    return f"## {title}\n\n{body}"


def _introduction(config: dict, repo_id: str | None) -> str:
    title = repo_id.split("/")[-1] if repo_id else "MagicNaming name encoder"
    towers = " ‖ ".join(tower["model"] for tower in config["towers"])
    return (
        f"# {title}\n\n"
        "A MagicNaming name encoder: from photos of a person it predicts a "
        f"*name embedding* of shape (N, D) = ({config['num_tokens']}, {config['width']}), which the MagicNaming plugin "
        "places after the start token of SDXL's prompt embeddings, so that the person appears in any prompt of an "
        f"unmodified SDXL pipeline. Frozen CLIP image towers ({towers}) feed a three-layer head; nothing in the "
        "UNet or the text encoders is changed."
    )


def _usage(repo_id: str) -> str:
    code = f"""```python
import torch
from diffusers import StableDiffusionXLPipeline
from namespace import NameEncoder
from namespace.inference import MagicNaming

pipe = StableDiffusionXLPipeline.from_pretrained(
    "{BASE_MODEL}", torch_dtype=torch.float16
).to("cuda")
encoder = NameEncoder.from_pretrained("{repo_id}").to("cuda")
naming = MagicNaming(pipe, encoder)

person = naming.identity(["photo1.jpg", "photo2.jpg"], label="person")  # photos of one consenting person
image = naming("a photo of a person riding a horse on the beach", person, num_inference_steps=30).images[0]
```"""
    return _section(
        "How to use",
        "Install magicnaming (the `namespace` package, from its repository), then load the encoder by its "
        f"repository id; the CLIP towers are downloaded through open_clip the first time.\n\n{code}",
    )


def _towers(towers: list[dict]) -> str:
    rows = ["| # | open_clip model | pretrained | embedding width | precision |", "| --- | --- | --- | --- | --- |"]
    for index, tower in enumerate(towers):
        pretrained = tower.get("pretrained") or "random (seeded)"
        rows.append(
            f"| {index} | {_cell(tower['model'])} | {_cell(pretrained)} | {tower['embed_dim']} | "
            f"{tower.get('precision', 'fp32')} |"
        )
    return _section(
        "Image towers",
        "Frozen; their embeddings are L2-normalised and concatenated. A tower whose checkpoint is a file of this "
        "repository (`towers/`) is loaded from it, the others through open_clip's pretrained tags.\n\n"
        + "\n".join(rows),
    )


def _statistics(config: dict) -> str:
    statistics = config.get("statistics") or {}
    count = statistics.get("count", 0)
    facts = {
        "N (name tokens)": config["num_tokens"],
        "D (name width)": config["width"],
        "head hidden widths": " × ".join(str(d) for d in config["hidden_dims"]),
        "reference crop": config.get("reference_crop", "none"),
        "identities the statistics were fitted on": count or "none (not fitted: untrained encoder)",
        "η, the mean name norm (eq. 5)": _value(statistics.get("name_norm")) if count else "—",
        "δ, the calibrated name guidance (eq. 4)": _value(statistics.get("delta", 1.0)),
        "PCA rank kept for sampling": config["pca_rank"],
    }
    return _section("Name-space statistics", _facts(facts))


def _training(record: dict) -> str:
    shown = {key: value for key, value in record.items() if key != "fingerprint"}
    if not shown:
        return _section(
            "Training record", "None recorded: this folder was not exported from a magicnaming training run."
        )
    return _section(
        "Training record",
        "What `magicnaming train` recorded about the run that produced these weights (the data set's path as it "
        "was given to the trainer, its identity count and the SHA-256 of its manifest and identity table).\n\n"
        + _facts(shown),
    )


def _licence(licence: str) -> str:
    return _section(
        "Licence",
        f"The encoder's weights: {licence}. The image towers keep the licences of their own weights (see the "
        "table above). The training photos belong to their owners: none is part of this repository.",
    )


def _responsible_use() -> str:
    return _section(
        "Responsible use",
        "Identity generation can be misused to impersonate, harass or deceive. Generate a real person only with "
        "their consent, never make an identity of a private person without their permission, and label synthetic "
        "images as synthetic. The plugin adds no safety checker to the pipelines it drives. Names inherit SDXL's "
        "and LAION's biases. More in MagicNaming's documentation: *Trust and responsible use* (`docs/trust.md`).",
    )


def _facts(facts: dict) -> str:
    """A two-column table of ``facts``; nested dictionaries become dotted keys."""
    rows = ["| | |", "| --- | --- |"]
    rows += [f"| {_cell(key)} | {_cell(_value(value))} |" for key, value in _flatten(facts)]
    return "\n".join(rows)


def _flatten(facts: dict, prefix: str = "") -> list[tuple[str, object]]:
    flat = []
    for key, value in facts.items():
        if isinstance(value, dict) and value:
            flat += _flatten(value, f"{prefix}{key}.")
        else:
            flat.append((f"{prefix}{key}", value))
    return flat


def _value(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, list | tuple):
        return ", ".join(_value(item) for item in value)
    return "—" if value is None else str(value)


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
