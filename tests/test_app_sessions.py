"""``magicnaming app`` with two visitors at once: the tabs' event handlers called from two threads on one app state
(the tiny test models, as ``--pipeline tiny`` loads them), as Gradio's queue calls them. Each visitor's placeholders
stay in its own drawing, stories get folders of their own, panels take turns with other visitors' images, the library
keeps both of two identities of one label, seeds are checked before drawing, errors show no server folder."""

from __future__ import annotations

import json
import threading
import time
from functools import partial
from pathlib import Path

import pytest
from PIL import Image

gr = pytest.importorskip("gradio")

from namespace import Identity  # noqa: E402
from namespace.inference.app import generate_tab, identities_tab, story_tab  # noqa: E402
from namespace.inference.app.drawing import shown_errors  # noqa: E402
from namespace.inference.app.state import TINY_DEFAULTS, load_state  # noqa: E402
from namespace.testing import synthetic_face  # noqa: E402

STORY = "Alice walks on a beach. She swims. She sleeps."
MAX_SEED = 2**64 - 1  # torch.Generator.manual_seed's largest


@pytest.fixture(scope="module")
def state(tmp_path_factory):
    """The app's state on the tiny test models, with alice and bob in the library."""
    folder = tmp_path_factory.mktemp("app")
    state = load_state("tiny", "tiny", TINY_DEFAULTS, folder / "library", folder / "outputs")
    for seed, label in enumerate(["alice", "bob"]):
        (person,) = state.naming.sample(1, seed=seed)
        state.library.save(person, label, Image.new("RGB", (8, 8)))
    return state


def _quiet(*args, **kwargs) -> None:
    """A progress bar that shows nothing (Gradio passes a tracked one)."""


def _generate(state, prompt: str, label: str | None = None, seed: float = 0, progress=_quiet):
    """The Generate tab's button: 2 steps of 32 px."""
    return generate_tab.generate(state, prompt, label, 1.0, 0, 0.0, 1.0, seed, 2, 32, 5.0, progress=progress)


def _story(state, labels: list[str], storyline: str, seed: float = 0, progress=_quiet):
    """The Story tab: parse, then draw (2 steps of 32 px); returns (page, gallery, status)."""
    panels = story_tab.parse(state, labels, "", storyline)
    return story_tab.draw_story(state, labels, "", panels, "comic", 4, seed, 2, 32, progress=progress)


def _in_threads(*calls) -> list:
    """Runs the calls at once (one thread each, started together); returns their results, raising the first error."""
    start, results = threading.Barrier(len(calls)), [None] * len(calls)

    def run(index, call):
        start.wait()
        try:
            results[index] = call()
        except Exception as error:  # handed to the test below
            results[index] = error

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results


def test_two_stories_drawn_at_once_get_a_folder_each(state, monkeypatch):
    monkeypatch.setattr(time, "strftime", lambda *args: "20261206-122724")  # both finish within one second
    first, second = _in_threads(
        lambda: _story(state, ["alice"], "Alice walks on a beach."), lambda: _story(state, ["bob"], "Bob swims.")
    )
    folders = [Path(gallery[0][0]).parents[1] for _, gallery, _ in (first, second)]
    assert folders[0] != folders[1] and all(
        f"{folder} (PDF" in status for folder, (*_, status) in zip(folders, (first, second), strict=True)
    )
    for folder, label in zip(folders, ["alice", "bob"], strict=True):
        assert json.loads((folder / "story.json").read_text())["characters"] == [label]
        assert [path.name for path in (folder / "panels").glob("*.png")] == ["panel-000.png"]
        assert json.loads((folder / "panels/panel-000.json").read_text())["people"][label]["label"] == label


def test_panels_take_turns_with_another_visitors_image(state):
    """Visitor A draws a three-panel story; visitor B, who asked after A, gets an image before A's second panel."""
    events, lock = [], state.lock

    def story_progress(done_total, **kwargs):
        events.append(("A", done_total[0]))

    def image_progress(done_total, **kwargs):  # called inside B's turn on the pipeline
        events.append(("B", sorted(state.naming.registry)))

    with lock:  # both visitors wait for their turn, A first
        a = threading.Thread(target=_story, args=(state, ["alice"], STORY), kwargs={"progress": story_progress})
        a.start()
        _wait_until(lambda: lock.waiting == 1)
        b = threading.Thread(target=_generate, args=(state, "a photo of a person"), kwargs={"progress": image_progress})
        b.start()
        _wait_until(lambda: lock.waiting == 2)
    a.join(timeout=300)
    b.join(timeout=300)
    last_b = max(i for i, event in enumerate(events) if event[0] == "B")
    assert last_b < events.index(("A", 2)), events  # B was drawn between A's first and second panels
    assert [event for event in events if event[0] == "B"] == [("B", [])] * 3  # A's <alice> is not B's
    assert state.naming.registry == {}


def _wait_until(condition, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_placeholders_belong_to_one_drawing(state):
    _story(state, ["alice"], "Alice walks on a beach.")
    assert state.naming.registry == {}  # the story's <alice> is gone with it
    _, settings = _generate(state, "<bob> on a beach")  # the library's bob, for this image only
    assert settings["identity"] is None and settings["people"] == {"bob": {"label": "bob", "source": "sampling"}}
    assert json.loads(state.outputs.joinpath(settings["output"]).with_suffix(".json").read_text())["people"]
    with pytest.raises(ValueError, match=r"^prompt <carol>: 'carol' is not in the library; saved: alice, bob"):
        _generate(state, "<carol> on a beach")
    with pytest.raises(ValueError, match=r"prompt: its placeholders \(<bob>\) name the people.*leave Identity empty"):
        _generate(state, "<bob> on a beach", "alice")


@pytest.mark.parametrize(
    ("seed", "shown"),
    [(2**80, "1208925819614629174706176"), (-1, "-1"), (1.5, "1.5"), (float("nan"), "nan"), (None, "None")],
)
def test_a_seed_outside_torchs_range_is_refused_before_drawing(state, seed, shown):
    calls, before = [], sorted(state.outputs.iterdir())
    expected = f"Seed: expected a whole number from 0 to {MAX_SEED} (2**64 - 1), got {shown}"
    with pytest.raises(ValueError) as refused:
        _generate(state, "a photo of a person", seed=seed, progress=lambda *a, **k: calls.append(a))
    assert str(refused.value) == expected
    assert calls == [] and sorted(state.outputs.iterdir()) == before  # nothing drawn, nothing written


def test_a_story_whose_last_panel_seed_overflows_is_refused_before_drawing(state):
    calls = []
    with pytest.raises(ValueError, match=rf"^Seed \+ 2 \(panel 3\): expected a whole number from 0 to {MAX_SEED}"):
        _story(state, ["alice"], STORY, seed=MAX_SEED - 1, progress=lambda *a, **k: calls.append(a))
    assert calls == []


def _photos(folder, person: int) -> list[str]:
    paths = []
    for variant in range(2):
        paths.append(str(folder / f"person{person}-{variant}.png"))
        synthetic_face(person, variant, size=64).save(paths[-1])
    return paths


def test_the_library_keeps_both_identities_of_one_label(state, tmp_path):
    first = state.library.folder / "alice.safetensors"
    kept = first.read_bytes()
    status, path, _ = identities_tab.make_identity(state, _photos(tmp_path, 3), "alice", False, progress=_quiet)
    assert (
        status
        == f"saved 'alice-2' ('alice' is taken) from 2 photo(s) to {state.library.folder / 'alice-2'}.safetensors"
    )
    assert first.read_bytes() == kept and Identity.load(path).label == "alice-2"
    # an uploaded identity file keeps its own label unless that is taken
    uploaded = tmp_path / "upload.safetensors"
    uploaded.write_bytes(kept)  # its own label: alice
    status, path = identities_tab.upload_identity(state, str(uploaded), "", progress=_quiet)
    assert status == "loaded upload.safetensors as 'alice-3' ('alice' is taken) into the library"
    # four visitors saving "carol" at the same moment: four identities
    people = state.naming.sample(4, seed=7)
    saved = _in_threads(*[partial(state.library.save, person, "carol", Image.new("RGB", (8, 8))) for person in people])
    assert sorted(path.stem for path in saved) == ["carol", "carol-2", "carol-3", "carol-4"]
    loaded = {path.stem: Identity.load(path) for path in saved}
    assert sorted(identity.label for identity in loaded.values()) == sorted(loaded)
    assert len({identity.embedding.sum().item() for identity in loaded.values()}) == 4


def test_errors_in_the_page_name_files_not_server_folders(state, tmp_path):
    huge = tmp_path / "huge.png"
    Image.new("1", (10_000, 10_000)).save(huge)  # 10^8 pixels, over PIL's decompression-bomb limit
    make = shown_errors(partial(identities_tab.make_identity, state))
    with pytest.raises(gr.Error) as shown:
        make([str(huge)], "dave", False, progress=_quiet)
    assert "'huge.png' is too large" in shown.value.message and "100,000,000 pixels" in shown.value.message
    assert str(tmp_path) not in shown.value.message
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not an identity")
    with pytest.raises(gr.Error) as shown:
        shown_errors(partial(identities_tab.upload_identity, state))(str(broken), "", progress=_quiet)
    assert "broken.safetensors" in shown.value.message and str(tmp_path) not in shown.value.message


def test_server_folders_are_cut_from_messages_but_not_urls():
    from namespace.inference.app.drawing import without_server_folders

    message = "photos: '/tmp/gradio/3f2a/me.png' is not readable; see https://example.com/docs/x (a/b)"
    assert without_server_folders(message) == "photos: 'me.png' is not readable; see https://example.com/docs/x (a/b)"
