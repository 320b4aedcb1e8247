"""magicnaming story: the storyline parser, the panel file, the LLM parser (a chat-completions server on 127.0.0.1),
the page layout, and the command end to end on the tiny offline models."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy
import pytest
import torch
import yaml
from PIL import Image

from namespace import Identity
from namespace.cli import main
from namespace.inference import MagicNaming
from namespace.inference.loading import load_encoder, load_pipeline
from namespace.inference.story import (
    Character,
    LLMConfig,
    Panel,
    layout_pages,
    panels_from_yaml,
    panels_to_yaml,
    parse_storyline,
    parse_with_llm,
    styled_prompts,
)
from namespace.inference.story.page import PAPER
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


# -- the LLM parser: a chat-completions server on 127.0.0.1 (no language model runs) ---------------------------------


class ChatServer:
    """Speaks the chat-completions protocol on 127.0.0.1 and answers a canned reply; keeps what it was sent."""

    def __init__(self, reply: str, status: int = 200) -> None:
        self.requests = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
                answer = {"id": "x", "object": "chat.completion", "model": body["model"],
                          "choices": [{"index": 0, "message": {"role": "assistant", "content": reply},
                                       "finish_reason": "stop"}]}  # fmt: skip
                data = json.dumps(answer if status == 200 else {"error": {"message": "model overloaded"}}).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def chat_server():
    servers = []

    def start(reply, status=200):
        servers.append(ChatServer(reply, status))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_llm_parser_through_an_openai_compatible_endpoint(chat_server, monkeypatch):
    panels = [{"sentence": "Mira met Nils.", "prompt": "<mira> shaking hands with <nils>", "people": ["mira", "nils"]},
              {"sentence": "She smiled.", "prompt": "<mira> smiling", "people": ["mira"]}]  # fmt: skip
    server = chat_server("Here you go:\n```json\n" + json.dumps({"panels": panels}) + "\n```")
    monkeypatch.setenv("STORY_TEST_KEY", "sk-test")
    llm = LLMConfig(base_url=server.url + "/", model="tiny-chat", api_key_env="STORY_TEST_KEY")
    parsed = parse_with_llm("Mira met Nils. She smiled.", CAST, llm)
    assert [(p.sentence, p.prompt, p.people) for p in parsed] == [tuple(p.values()) for p in panels]
    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions" and request["auth"] == "Bearer sk-test"
    assert request["body"]["model"] == "tiny-chat" and request["body"]["temperature"] == 0.0
    system, user = request["body"]["messages"]
    assert system["role"] == "system" and "<label>" in system["content"]
    assert "<mira>: Mira Okonkwo (she)" in user["content"] and user["content"].endswith("Mira met Nils. She smiled.")


def test_llm_parser_errors(chat_server):
    bad = chat_server(json.dumps({"panels": [{"prompt": "<mira> and <zoe>", "sentence": "x"}]}))
    with pytest.raises(ValueError, match="llm: the panels of model 'm': panels\\[0\\] names an unknown person 'zoe'"):
        parse_with_llm("Mira met Zoe.", CAST, LLMConfig(bad.url, "m", api_key_env=None))
    prose = chat_server("I cannot help with that.")
    with pytest.raises(ValueError, match="did not answer JSON panels"):
        parse_with_llm("Mira sat.", CAST, LLMConfig(prose.url, "m", api_key_env=None))
    failing = chat_server("", status=503)
    with pytest.raises(OSError, match=r"answered HTTP 503: .*model overloaded"):
        parse_with_llm("Mira sat.", CAST, LLMConfig(failing.url, "m", api_key_env=None))
    with pytest.raises(ValueError, match="storyline: expected at least one sentence"):
        parse_with_llm("  ", CAST, LLMConfig(failing.url, "m"))
    assert len(failing.requests) == 1  # the empty storyline never reached the endpoint


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


# -- the command end to end on the tiny offline models ---------------------------------------------------------------

STEPS = {"num_inference_steps": 2, "height": 32, "width": 32, "guidance_scale": 5.0}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from namespace.testing import tiny_name_encoder, tiny_sdxl_pipeline

    root = tmp_path_factory.mktemp("story-models")
    pipe = tiny_sdxl_pipeline()
    pipe.save_pretrained(root / "pipeline")
    encoder = tiny_name_encoder(pipe)
    encoder.save_pretrained(root / "encoder")
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
    assert main(["story", "--config", str(config), "--output", str(out), "--parse-only"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["panels.yaml"]  # nothing drawn
    body = yaml.safe_load((out / "panels.yaml").read_text())
    assert [p["prompt"] for p in body["panels"]] == ["<mira> walked on the beach", "<nils> waved at <mira>",
                                                     "<mira> smiled"]  # fmt: skip
    body["panels"][2] |= {"prompt": "<mira> and <nils> dancing", "people": ["mira", "nils"], "seed": 99}
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(body))

    assert main(["story", "--config", str(config), "--output", str(out), "--panels", str(edited)]) == 0
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
