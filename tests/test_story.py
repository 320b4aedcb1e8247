"""magicnaming story: the storyline parser, the panel file, the page layout, the caps on a story, and the command end
to end on the tiny offline models (the LLM parser: test_story_llm.py)."""

import itertools
import json

import numpy
import pytest
import torch
import yaml
from PIL import Image

from namespace import Identity
from namespace.cli import main
from namespace.inference import MagicNaming
from namespace.inference.story import (
    Character,
    Panel,
    layout_pages,
    panels_from_yaml,
    panels_to_yaml,
    parse_storyline,
    styled_prompts,
    write_story,
)
from namespace.inference.story.config import (
    MAX_PANEL_TEXT_CHARS,
    MAX_PANELS,
    MAX_PROMPT_CHARS,
    MAX_SENTENCE_CHARS,
    MAX_STORYLINE_CHARS,
)
from namespace.inference.story.page import PAPER, _font, wrap_caption
from namespace.model_names import load_encoder, load_pipeline
from namespace.testing import synthetic_face

CAST = [
    Character("mira", "Mira Okonkwo", photos=["unused"], pronoun="she"),
    Character("nils", "Nils Marchetti", photos=["unused"], pronoun="he"),
]


# -- the built-in parser ---------------------------------------------------------------------------------------------


def prompts(storyline, cast=CAST):
    return [(panel.prompt, panel.people) for panel in parse_storyline(storyline, cast)]


def test_full_names_first_names_and_labels_become_placeholders():
    assert prompts("Mira Okonkwo walked on the beach. Then Nils waved! NILS and mira laughed? <nils> slept.") == [
        ("<mira> walked on the beach", ["mira"]),
        ("Then <nils> waved", ["nils"]),
        ("<nils> and <mira> laughed", ["nils", "mira"]),
        ("<nils> slept", ["nils"]),
    ]
    # a name is a whole word: "Miranda" is not Mira; names are case-sensitive ("nils" is the label, any case)
    assert prompts("Miranda met Nils.") == [("Miranda met <nils>", ["nils"])]


def test_pronouns_mean_the_last_matching_person():
    assert prompts(
        "Mira met Nils at sunset. He gave her a book, and she smiled. Her dog barked at him. They walked home."
    ) == [
        ("<mira> met <nils> at sunset", ["mira", "nils"]),
        ("<nils> gave <mira> a book, and she smiled", ["nils", "mira"]),  # "she": Mira is already in the panel
        ("<mira>'s dog barked at <nils>", ["mira", "nils"]),  # a possessive "her" gets 's
        ("<mira> and <nils> walked home", ["mira", "nils"]),  # plural they: the people of the previous sentence
    ]
    # without a pronoun field any pronoun means the last person mentioned; with no one before it, it stays
    cast = [Character("a", "Ann Lee", photos=["x"]), Character("b", "Bo Chen", photos=["x"])]
    assert prompts("She ran. Ann sat. Bo stood. She left.", cast) == [
        ("She ran", []), ("<a> sat", ["a"]), ("<b> stood", ["b"]), ("<b> left", ["b"]),
    ]  # fmt: skip
    # a character whose pronoun is "they" is meant by a singular they
    cast = [Character("sam", "Sam Reyes", photos=["x"], pronoun="they"), CAST[1]]
    assert prompts("Sam met Nils. They smiled.", cast)[1] == ("<sam> smiled", ["sam"])


def test_a_storyline_without_a_sentence_and_an_unknown_placeholder_are_errors():
    for empty in ("", "   \n\n ...  ", "!?"):
        with pytest.raises(ValueError, match="storyline: expected at least one sentence"):
            parse_storyline(empty, CAST)
    with pytest.raises(ValueError, match=r"sentence 2 \('<bob> ran.'\) names <bob>.*characters: <mira>, <nils>"):
        parse_storyline("Mira sat. <bob> ran.", CAST)


def test_styles_add_a_suffix_and_a_negative_prompt():
    panel = Panel("Mira sat.", "<mira> sat")
    prompt, negative = styled_prompts(panel, "comic")
    assert prompt.startswith("<mira> sat, comic book") and "photorealistic" in negative
    assert styled_prompts(panel, "none") == ("<mira> sat", None)
    with pytest.raises(ValueError, match="style: expected one of none, comic, cinematic"):
        styled_prompts(panel, "oil")


# -- the panel file --------------------------------------------------------------------------------------------------


def test_panel_yaml_round_trips_and_reads_edits():
    panels = parse_storyline("Mira met Nils. She smiled.", CAST)
    assert panels_from_yaml(panels_to_yaml(panels), CAST) == panels
    body = yaml.safe_load(panels_to_yaml(panels))
    body["panels"][1]["prompt"] = "<nils> and <mira> dancing in the rain"  # an edit: people derived from the prompt
    del body["panels"][1]["people"]
    body["panels"][0]["seed"] = 42
    edited = panels_from_yaml(yaml.safe_dump(body), CAST)
    assert edited[1].people == ["nils", "mira"] and edited[1].sentence == "She smiled." and edited[0].seed == 42


def test_a_panel_naming_an_unknown_person_is_an_error():
    text = "panels:\n- {sentence: x, prompt: <mira> meets <zoe>}\n- {prompt: <nils> waves, people: [nils, mira]}\n"
    with pytest.raises(ValueError) as error:
        panels_from_yaml(text, CAST, "--panels edited.yaml")
    message = str(error.value)
    assert "2 problems" in message
    assert "--panels edited.yaml: panels[0] names an unknown person 'zoe'" in message
    assert "characters: mira, nils" in message
    assert "panels[1].people: ['mira'] are not in the prompt '<nils> waves'" in message
    with pytest.raises(ValueError, match="unknown key"):
        panels_from_yaml("panels:\n- {prompt: <mira> sits, caption: x}\n", CAST)


# -- the page --------------------------------------------------------------------------------------------------------


def test_page_layout_grid_gutters_and_captions():
    colours = [(200, 0, 0), (0, 200, 0), (0, 0, 200), (200, 200, 0), (0, 200, 200)]
    images = [Image.new("RGB", (16, 16), c) for c in colours]
    captions = ["Mira walked on the beach and met a very long caption that wraps", "", "Nils", "x", "The end."]
    pages = layout_pages(images, captions, panels_per_page=4, columns=2, panel_size=64, gutter=10, caption_lines=2,
                         font_size=12)  # fmt: skip
    assert len(pages) == 2 and pages[0].size == pages[1].size
    band = 2 * 16 + 5  # caption lines × line height (12 + 12 // 3) + half a gutter
    assert pages[0].size == (2 * 64 + 3 * 10, 2 * (64 + band) + 3 * 10)
    page = pages[0]
    for k, colour in enumerate(colours[:4]):
        row, column = divmod(k, 2)
        x, y = 10 + column * (64 + 10), 10 + row * (64 + band + 10)
        assert page.getpixel((x + 32, y + 32)) == colour  # the panel, scaled to 64 (nearest: the colour exact)
        assert page.getpixel((x - 5, y + 32)) == PAPER  # the gutter
        caption_band = page.crop((x, y + 64 + 2, x + 64, y + 64 + band))
        inked = int((numpy.asarray(caption_band) != PAPER).any(axis=2).sum())
        assert (inked > 0) == bool(captions[k]), (k, inked)  # a caption under each panel, nothing under an empty one
    assert pages[1].getpixel((10 + 64 + 10 + 32, 10 + 32)) == PAPER  # page 2 holds one panel: the rest is paper
    with pytest.raises(ValueError, match="captions: expected one per panel \\(5\\), got 1"):
        layout_pages(images, ["x"])


class MeasuredFont:
    """Pillow's own caption font, counting the characters it is asked to measure (the wrapping's work)."""

    def __init__(self, size: int = 14) -> None:
        self.font, self.measured = _font(size), 0

    def getlength(self, text: str) -> float:
        self.measured += len(text)
        return self.font.getlength(text)


@pytest.mark.parametrize("caption", ["w" * 8000, " ".join(["w" * 2000] * 4), "Mira walked " * 700])
def test_caption_wrapping_is_linear_and_breaks_words_wider_than_a_line(caption):
    font = MeasuredFont()
    lines = wrap_caption(caption, font, 64, 3)
    # the old wrapping measured the cut line one character shorter at a time: 2000² / 2 characters for 4 long words
    assert font.measured < 3 * len(caption), font.measured
    assert len(lines) == 3 and lines[-1].endswith("…")
    assert all(font.font.getlength(line) <= 64 for line in lines)  # a long word is broken, not drawn off the panel
    assert wrap_caption("Mira walked", font, 200, 3) == ["Mira walked"]


def test_a_story_is_capped_before_anything_is_drawn():
    sentence = "Mira sat on the beach. "
    with pytest.raises(ValueError, match=f"storyline: expected at most {MAX_PANELS} sentences .*got {MAX_PANELS + 1}"):
        parse_storyline(sentence * (MAX_PANELS + 1), CAST)
    assert len(parse_storyline(sentence * MAX_PANELS, CAST)) == MAX_PANELS
    long = "Mira " + "a" * MAX_SENTENCE_CHARS + "."
    with pytest.raises(ValueError, match=f"sentence 2 .* has {len(long)} characters, expected at most "
                                         f"{MAX_SENTENCE_CHARS}"):  # fmt: skip
        parse_storyline("Mira sat. " + long, CAST)
    with pytest.raises(ValueError, match=f"storyline: expected text of at most {MAX_STORYLINE_CHARS} characters"):
        parse_storyline(" " * (MAX_STORYLINE_CHARS + 1) + "Mira sat.", CAST)
    rows = [{"prompt": "<mira> sits"}] * (MAX_PANELS + 1)
    with pytest.raises(ValueError, match=f"--panels x.yaml: panels: expected at most {MAX_PANELS} panels"):
        panels_from_yaml(yaml.safe_dump({"panels": rows}), CAST, "--panels x.yaml")
    rows = [{"prompt": "<mira> " + "p" * MAX_PROMPT_CHARS, "sentence": "s" * (MAX_SENTENCE_CHARS + 1)}]
    with pytest.raises(ValueError) as error:
        panels_from_yaml(yaml.safe_dump({"panels": rows}), CAST, "--panels x.yaml")
    assert f"panels[0].sentence: expected at most {MAX_SENTENCE_CHARS} characters, got {MAX_SENTENCE_CHARS + 1}" in (
        str(error.value)
    )
    assert f"panels[0].prompt: expected at most {MAX_PROMPT_CHARS} characters, got {MAX_PROMPT_CHARS + 7}" in (
        str(error.value)
    )
    with pytest.raises(ValueError, match=f"expected at most {MAX_PANEL_TEXT_CHARS} characters of panels"):
        panels_from_yaml("#" * (MAX_PANEL_TEXT_CHARS + 1), CAST)
    levels = "abcdefghi"  # each a list of ten of the one before: 10⁹ items once expanded
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{level}: &{level} [{', '.join([f'*{below}'] * 10)}]\n" for below, level in itertools.pairwise(levels)
    )
    with pytest.raises(ValueError, match=r"panels\[0\].sentence: expected text, got list"):  # never str()'d
        panels_from_yaml(bomb + "panels:\n- {prompt: <mira> sits, sentence: *i}\n", CAST)


# -- the command's flags: snake_case, a boolean takes its value -------------------------------------------------------


def test_parse_only_true_writes_the_panel_file_alone(tmp_path):
    """``--parse_only true`` (the style of every magicnaming flag) parses without loading any model."""
    (tmp_path / "mira").mkdir()
    mira = {"label": "mira", "name": "Mira Okonkwo", "photos": [str(tmp_path / "mira")], "pronoun": "she"}
    config = {"encoder": "unused", "pipeline": "unused", "characters": [mira], "storyline": "Mira sat. She smiled."}
    (tmp_path / "story.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "out"
    assert main(["story", "--config", str(tmp_path / "story.yaml"), "--output", str(out), "--parse_only", "true"]) == 0
    assert [p.name for p in out.iterdir()] == ["panels.yaml"]
    assert [p["prompt"] for p in yaml.safe_load((out / "panels.yaml").read_text())["panels"]] == [
        "<mira> sat",
        "<mira> smiled",
    ]


@pytest.mark.parametrize(
    ("flags", "refused", "expected"),
    [
        (["--parse-only"], "--parse-only", "--parse_only true"),  # the old spelling
        (["--parse-only=true"], "--parse-only", "--parse_only true"),
        (["--parse_only"], "--parse_only", "--parse_only true"),  # a bare switch
        (["--overwrite", "--parse_only", "true"], "--overwrite", "--overwrite true"),
        (["--parse_only", "true", "--overwrite"], "--overwrite", "--overwrite true"),
        (["--judge-world", "miniature"], "--judge-world", "--judge_world"),  # kebab-case, not a boolean
        (["--num-inference-steps", "3"], "--num-inference-steps", "--num_inference_steps"),  # a GenerationSettings flag
    ],
)
def test_old_spellings_and_bare_switches_are_refused_by_name(flags, refused, expected, tmp_path, capsys):
    """Refused before anything is read, naming the argument and the form expected (jsonargparse would say only
    "unrecognized arguments" or "expected one argument")."""
    with pytest.raises(SystemExit) as exited:
        main(["story", "--output", str(tmp_path / "out"), *flags])
    assert exited.value.code == 2  # a usage error, as jsonargparse's own
    error = capsys.readouterr().err.splitlines()[0]
    assert error.startswith("magicnaming story: error: ") and f"argument {refused}:" in error and expected in error
    assert not (tmp_path / "out").exists()


# -- the command end to end on the tiny offline models ---------------------------------------------------------------

STEPS = {"num_inference_steps": 2, "height": 32, "width": 32, "guidance_scale": 5.0}


@pytest.fixture(scope="module")
def models(tmp_path_factory, tiny_models, tiny_pipe):
    """The shared saved tiny models (linked, never written into), a folder of mira's photos and nils' identity."""
    from namespace.testing import tiny_name_encoder

    root = tmp_path_factory.mktemp("story-models")
    (root / "pipeline").symlink_to(tiny_models.pipeline)
    (root / "encoder").symlink_to(tiny_models.encoder)
    encoder = tiny_name_encoder(tiny_pipe)
    (root / "mira").mkdir()
    for v in range(2):
        synthetic_face(1, v, 64).save(root / "mira" / f"{v}.png")
    Identity.from_images(encoder, [synthetic_face(2, 0, 64)], label="nils").save(root / "nils.safetensors")
    return root


def story_config(models, tmp_path, **changes):
    config = {
        "encoder": str(models / "encoder"),
        "pipeline": str(models / "pipeline"),
        "characters": [
            {"label": "mira", "name": "Mira Okonkwo", "photos": [str(models / "mira")], "pronoun": "she"},
            {"label": "nils", "name": "Nils Marchetti", "identity": str(models / "nils.safetensors"), "pronoun": "he"},
        ],
        "storyline": "Mira Okonkwo walked on the beach. Nils waved at her. She smiled.",
        "style": "comic",
        "panels_per_page": 2,
        "panel_size": 64,
        "gutter": 8,
        "seed": 5,
        "check_faces": False,
        **STEPS,
        **changes,
    }
    path = tmp_path / "story.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_story_parse_only_then_draw_the_edited_panels(models, tmp_path):
    config, out = story_config(models, tmp_path), tmp_path / "out"
    assert main(["story", "--config", str(config), "--output", str(out), "--parse_only", "true"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["panels.yaml"]  # nothing drawn
    body = yaml.safe_load((out / "panels.yaml").read_text())
    assert [p["prompt"] for p in body["panels"]] == ["<mira> walked on the beach", "<nils> waved at <mira>",
                                                     "<mira> smiled"]  # fmt: skip
    body["panels"][2] |= {"prompt": "<mira> and <nils> dancing", "people": ["mira", "nils"], "seed": 99}
    edited = out / "panels.yaml"  # edited in place, drawn into its own folder: the round trip needs no --overwrite true
    edited.write_text("# my edits\n" + yaml.safe_dump(body))

    assert main(["story", "--config", str(config), "--output", str(out), "--panels", str(edited)]) == 0
    assert edited.read_text().startswith("# my edits\n")  # kept as the user wrote it
    assert sorted(p.name for p in (out / "panels").iterdir()) == [f"panel-{i:03d}.{e}" for i in range(3)
                                                                  for e in ("json", "png")]  # fmt: skip
    pages = [Image.open(out / name) for name in ("page-01.png", "page-02.png")]
    assert pages[0].size == pages[1].size == (2 * 64 + 3 * 8, 64 + 2 * 8 + 3 * (14 + 4) + 4)
    assert (out / "story.pdf").read_bytes().startswith(b"%PDF") and b"/Count 2" in (out / "story.pdf").read_bytes()
    story = json.loads((out / "story.json").read_text())
    assert story["panels_file"] == str(edited) and story["files"]["pages"] == ["page-01.png", "page-02.png"]
    settings = json.loads((out / "panels/panel-002.json").read_text())
    assert settings["seed"] == 99 and settings["prompt"].startswith("<mira> and <nils> dancing, comic book")
    assert set(settings["people"]) == {"mira", "nils"} and settings["sentence"] == "She smiled."
    assert json.loads((out / "panels/panel-001.json").read_text())["seed"] == 6  # story seed 5 + panel 1
    drawing_keys = ["seed", "style", "delta", "eta", "step_window", "num_inference_steps", "guidance_scale"]
    assert list(settings) == ["panel", "sentence", "prompt", "negative_prompt", "people", *drawing_keys, "height",
                              "width"]  # fmt: skip
    drawing = {key: story[key] for key in [*drawing_keys, "height", "width"]}
    assert drawing == {"style": "comic", "seed": 5, **STEPS, "delta": None, "eta": None, "step_window": None}

    # each panel is what the plugin draws in-process: identities from the photos / the file, <label> placeholders
    naming = MagicNaming(load_pipeline(str(models / "pipeline")), load_encoder(str(models / "encoder")))
    naming.register("mira", naming.identity(models / "mira", label="mira", check_faces=False))
    naming.register("nils", naming.load(str(models / "nils.safetensors")))
    expected = naming(settings["prompt"], negative_prompt=settings["negative_prompt"],
                      generator=torch.Generator().manual_seed(99), **STEPS).images[0]  # fmt: skip
    assert Image.open(out / "panels/panel-002.png").tobytes() == expected.tobytes()
    plain = naming("a person and a person dancing, " + settings["prompt"].split(", ", 1)[1],
                   negative_prompt=settings["negative_prompt"], generator=torch.Generator().manual_seed(99),
                   **STEPS).images[0]  # fmt: skip
    assert plain.tobytes() != expected.tobytes()  # the names made a difference


def test_story_errors_before_drawing(models, tmp_path, capsys):
    out = tmp_path / "out"
    characters = [{"label": "mira", "name": "Mira Okonkwo", "photos": []},
                  {"label": "nils", "photos": [str(tmp_path / "missing")]}]  # fmt: skip
    config = story_config(models, tmp_path, characters=characters, storyline=" ")
    assert main(["story", "--config", str(config), "--output", str(out)]) == 1
    error = capsys.readouterr().err
    assert "characters[0].photos: expected reference photos (files or folders) or characters[0].identity" in error
    assert "for 'mira', found neither" in error
    assert f"characters[1].photos[0]: '{tmp_path / 'missing'}' does not exist" in error
    assert not out.exists()

    config = story_config(models, tmp_path, storyline="...")
    assert main(["story", "--config", str(config), "--output", str(out)]) == 1
    assert "storyline: expected at least one sentence, got '...'" in capsys.readouterr().err

    panels = tmp_path / "panels.yaml"
    panels.write_text("panels:\n- {sentence: Zoe ran., prompt: <zoe> running}\n")
    config = story_config(models, tmp_path)
    assert main(["story", "--config", str(config), "--output", str(out), "--panels", str(panels)]) == 1
    assert "panels[0] names an unknown person 'zoe'" in capsys.readouterr().err
    assert not out.exists()  # every error came before a model loaded or a file was written


def test_bad_drawing_settings_are_reported_together_before_anything_loads(models, tmp_path, capsys):
    out = tmp_path / "out"
    config = story_config(models, tmp_path, num_inference_steps=0, height=12, step_window=[0.5, 0.2])
    judge_world = ["--judge_world", str(models / "pipeline")]  # a pipeline folder, not a miniature world
    assert main(["story", "--config", str(config), "--output", str(out), *judge_world]) == 1
    error = capsys.readouterr().err
    assert "4 problems:" in error and "--num_inference_steps: expected at least 1, got 0" in error
    assert "--height: expected a multiple of 8 of at least 8 (or null: the pipeline's), got 12" in error
    assert "--step_window: expected 0 <= start < end <= 1, got (0.5, 0.2)" in error
    assert f"--judge_world: expected a miniature world folder (with world.json), got '{models / 'pipeline'}'" in error
    # panel i draws with seed + i: the storyline's three panels need seeds up to seed + 2
    config = story_config(models, tmp_path, seed=2**64 - 2)
    assert main(["story", "--config", str(config), "--output", str(out)]) == 1
    assert f"--seed: expected an integer from 0 to 2**64-1 (seed + k for k < 3, so at most {2**64 - 3})" in (
        capsys.readouterr().err
    )
    assert not out.exists()


def test_tiny_names_draw_the_story_the_saved_tiny_models_draw(models, tmp_path):
    """``--encoder tiny --pipeline tiny`` resolve (namespace.model_names) to the models the saved folders hold."""
    drawn = {}
    for kind, names in (("folders", {}), ("tiny", {"encoder": "tiny", "pipeline": "tiny"})):
        out = tmp_path / kind
        assert main(["story", "--config", str(story_config(models, tmp_path, **names)), "--output", str(out)]) == 0
        drawn[kind] = [Image.open(out / f"panels/panel-00{i}.png").tobytes() for i in range(3)]
        pipeline = json.loads((out / "story.json").read_text())["pipeline"]
        assert pipeline == names.get("pipeline", str(models / "pipeline"))
    assert drawn["tiny"] == drawn["folders"]


def test_a_rerun_never_replaces_an_edited_panel_file_and_overwrite_leaves_nothing_stale(models, tmp_path, capsys):
    config, out = story_config(models, tmp_path), tmp_path / "out"
    assert main(["story", "--config", str(config), "--output", str(out), "--parse_only", "true"]) == 0
    panels_yaml = out / "panels.yaml"
    panels_yaml.write_text(panels_yaml.read_text().replace("<mira> smiled", "<mira> smiled, EDITED"))
    capsys.readouterr()
    for extra in (["--parse_only", "true"], []):  # a re-parse, and a draw of the storyline, would both replace it
        assert main(["story", "--config", str(config), "--output", str(out), *extra]) == 1
        error = capsys.readouterr().err
        assert f"--output: '{panels_yaml}' already exists and may hold your edits" in error
        assert f"draw it with --panels {panels_yaml}, or pass --overwrite true" in error
        assert "EDITED" in panels_yaml.read_text() and sorted(p.name for p in out.iterdir()) == ["panels.yaml"]

    # the edited file drawn into its folder; a redraw needs --overwrite true, which keeps the file as edited and leaves
    # none of the longer story's panels or pages behind
    draw = ["story", "--config", str(config), "--output", str(out), "--panels", str(panels_yaml)]
    assert main(draw) == 0 and len(list((out / "panels").iterdir())) == 6 and (out / "page-02.png").is_file()
    body = yaml.safe_load(panels_yaml.read_text())
    panels_yaml.write_text("# one panel left\n" + yaml.safe_dump({"panels": body["panels"][2:]}))
    assert main(draw) == 1
    assert "already holds a drawn story; pass --overwrite true to redraw" in capsys.readouterr().err
    assert main([*draw, "--overwrite", "true"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["page-01.png", "panels", "panels.yaml", "story.json",
                                                     "story.pdf"]  # fmt: skip
    assert sorted(p.name for p in (out / "panels").iterdir()) == ["panel-000.json", "panel-000.png"]
    assert panels_yaml.read_text().startswith("# one panel left\n") and "EDITED" in panels_yaml.read_text()
    # a re-parse with --overwrite true replaces the folder whole: the parsed panels.yaml alone
    reparse = ["story", "--config", str(config), "--output", str(out), "--parse_only", "true", "--overwrite", "true"]
    assert main(reparse) == 0
    assert sorted(p.name for p in out.iterdir()) == ["panels.yaml"] and "EDITED" not in panels_yaml.read_text()


def test_write_story_refuses_an_existing_folder_unless_overwrite(tmp_path):
    panels = [Panel("Mira sat.", "<mira> sat", ["mira"])]
    drawn = [(Image.new("RGB", (8, 8)), {"panel": 0})]
    pages = layout_pages([drawn[0][0]], ["Mira sat."], panel_size=8)
    (tmp_path / "story").mkdir()  # an empty folder (the app makes one per story) counts as new
    files = write_story(tmp_path / "story", panels, drawn, pages, {"seed": 0})
    assert files.pages == [tmp_path / "story/page-01.png"] and files.panels_yaml.is_file()
    with pytest.raises(FileExistsError, match=r"output: expected a new folder, .* already exists"):
        write_story(tmp_path / "story", panels, drawn, pages, {"seed": 0})
    write_story(tmp_path / "story", panels, drawn + drawn, pages, {"seed": 1}, overwrite=True)
    assert json.loads(files.settings.read_text())["seed"] == 1 and len(list((tmp_path / "story/panels").iterdir())) == 4
