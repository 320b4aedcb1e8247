"""Every YAML in configs/ is validated against the code it configures."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from namespace.command_line import flat_arguments, flat_parser
from namespace.data_pipeline.commands import build as data_build
from namespace.demo import demo
from namespace.encoder import NameEncoderConfig
from namespace.encoder.commands import create
from namespace.inference.story import story

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").rglob("*.yaml"))
# which function's signature each config mirrors; a YAML that is in none of these fails the first test
COMMANDS = {"encoder": create, "demo.yaml": demo, "demo-sdxl.yaml": demo, "data": data_build, "train": "lightning",
            "eval": "evaluate", "story": story}  # fmt: skip


def command_for(path: Path):
    relative = path.relative_to(ROOT / "configs")
    return COMMANDS.get(relative.parts[0])


def parse(function, path: Path) -> SimpleNamespace:
    """``function``'s arguments from ``--config PATH`` as the command line parses them (``--output`` is given on
    the command line)."""
    parser = flat_parser(function, exit_on_error=False)
    return SimpleNamespace(**flat_arguments(function, parser, ["--config", str(path), "--output", "unused"]))


def test_every_config_belongs_to_a_command():
    assert CONFIGS, "configs/ holds no YAML"
    assert [p.name for p in CONFIGS if command_for(p) is None] == []


OVERLAYS = {"multinode.yaml": "sdxl.yaml", "tiny-streaming.yaml": "tiny.yaml", "sdxl-streaming.yaml": "sdxl.yaml"}


def parse_training(path: Path):
    """Instantiates the LightningCLI of ``magicnaming train`` from the config without running it."""
    from namespace.train.commands import training_cli
    from namespace.train.module import NameEncoderModule
    from namespace.train.resumable import ResumableDataModule

    args = ["--config", str(path)]
    if path.name in OVERLAYS:  # an overlay: it goes on top of its recipe
        args = ["--config", str(path.with_name(OVERLAYS[path.name])), *args]
    if not torch.cuda.is_available():  # GPU configs are checked on the CPU: the rest of them must still parse
        args += ["--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.num_nodes", "1"]
        args += ["--trainer.strategy", "auto"]
    cli = training_cli(args, run=False)
    assert isinstance(cli.model, NameEncoderModule) and isinstance(cli.datamodule, ResumableDataModule)
    return cli


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(ROOT / "configs")))
def test_config_parses_against_its_command(path):
    if command_for(path) == "lightning":
        parse_training(path)
        return
    if command_for(path) == "evaluate":  # its options sit at the top level: its own parser reads it
        from namespace.inference.evaluation.commands import parse_evaluation
        from namespace.inference.evaluation.config import EvaluationConfig

        config, output, overwrite = parse_evaluation(["--config", str(path), "--output", "unused"])
        assert isinstance(config, EvaluationConfig) and config.suite and config.methods and output.name == "unused"
        assert overwrite is False
        return
    config = parse(command_for(path), path)
    if command_for(path) is create:
        assert isinstance(config.encoder, NameEncoderConfig)


def test_sdxl_config_is_the_paper_shape():
    encoder = parse(create, ROOT / "configs/encoder/sdxl.yaml").encoder
    assert (encoder.num_tokens, encoder.width, encoder.feature_dim) == (8, 2048, 2048)
    assert [tower.model for tower in encoder.towers] == ["ViT-L-14", "ViT-bigG-14"]


def test_demo_configs_name_existing_stage_configs():
    for name in ("demo.yaml", "demo-sdxl.yaml"):
        config = parse(demo, ROOT / "configs" / name)
        for path in [*config.data_configs, *config.train_configs]:
            assert (ROOT / path).is_file(), f"{name} names {path}"
    full_size = parse(demo, ROOT / "configs/demo-sdxl.yaml")
    encoder = parse(create, ROOT / "configs/encoder/sdxl.yaml").encoder
    assert [(t.model, t.pretrained) for t in full_size.towers] == [(t.model, t.pretrained) for t in encoder.towers]
    # the images come from the pipeline whose text encoders made the data's name targets
    data_overlay = yaml.safe_load((ROOT / "configs/data/demo-sdxl.yaml").read_text())
    assert full_size.pipeline == data_overlay["data"]["pipeline"] != "tiny"


def test_a_config_with_a_typo_is_refused(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text((ROOT / "configs/encoder/tiny.yaml").read_text().replace("num_tokens", "num_token"))
    with pytest.raises(Exception, match="num_token"):
        parse(create, bad)
