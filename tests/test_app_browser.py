"""``magicnaming app`` in a real browser: the app served on 127.0.0.1 (a subprocess, as a user starts it), driven by
Playwright with Debian's Chromium (no browser download), a scenario a test: an error in the page, identities from
photos, the face check, an image, a two-panel story; no page asks any host but 127.0.0.1 for anything (the app turns
Gradio's analytics off itself: the tests do not).

The app runs on the tiny test models; with ``MAGICNAMING_SCREENSHOTS=FOLDER`` it runs on its defaults instead (the
miniature world and the demo's encoder: ``make demo`` first) and the tests save their screenshots into FOLDER
(``app.png`` is the Story tab's: the README's picture of the app)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from namespace.faces import face_stack_installed

from .conftest import free_port, wait_until_serving

pytest.importorskip("gradio")
sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)"),
]
ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_MS = 60_000
SCREENSHOTS = os.environ.get("MAGICNAMING_SCREENSHOTS")  # a folder: screenshots of the app on its default models


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """The app's URL and its folder (library/, outputs/, app.log), served until the module's tests end."""
    folder = tmp_path_factory.mktemp("app")
    port = free_port()
    models = [] if SCREENSHOTS else ["--pipeline", "tiny"]  # the defaults: the miniature world, the demo's encoder
    command = [sys.executable, "-m", "namespace.cli", "app", *models, "--port", str(port)]
    command += ["--library", str(folder / "library"), "--outputs", str(folder / "outputs")]
    env = os.environ | {"GRADIO_TEMP_DIR": str(folder / "gradio")}
    log = (folder / "app.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_serving(server, url, folder / "app.log")
        yield url, folder
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    """Where the screenshots go: MAGICNAMING_SCREENSHOTS, else a temporary folder."""
    folder = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True)
        yield browser
        browser.close()


@pytest.fixture
def requested() -> list[str]:
    """Every URL the test's page asks for: fonts, scripts, images, the API."""
    return []


@pytest.fixture
def page(app_url, browser, requested):
    """A new page on the app, its requests recorded in ``requested``."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    page.on("request", lambda request: requested.append(request.url))
    page.goto(app_url[0])
    yield page
    page.close()


def elsewhere(requested: list[str]) -> list[str]:
    """The URLs asked of any host but 127.0.0.1."""
    return [url for url in requested if urllib.parse.urlsplit(url).hostname not in (None, "127.0.0.1")]


def _photos(folder: Path, person: int) -> list[str]:
    """Two photos of a cast person (of the miniature world's famous people when ``person`` < its ``famous``)."""
    from namespace.testing import synthetic_face

    paths = []
    for variant in range(2):
        path = folder / f"person{person}-{variant}.png"
        synthetic_face(person, variant, size=64).save(path)
        paths.append(str(path))
    return paths


def _image_width(page, selector: str) -> int:
    """Waits for an <img> with a non-empty src under ``selector`` to load; returns its natural width."""
    image = page.locator(f"{selector} img").first
    image.wait_for(state="visible", timeout=TIMEOUT_MS)
    page.wait_for_function(
        "(s) => { const i = document.querySelector(s + ' img'); return i && i.src && i.complete && i.naturalWidth }",
        arg=selector,
        timeout=TIMEOUT_MS,
    )
    return page.evaluate("(s) => document.querySelector(s + ' img').naturalWidth", selector)


def _pick(page, label: str, options: list[str]) -> None:
    """Chooses options in a Gradio dropdown named ``label``."""
    for option in options:
        page.get_by_label(label).click()
        page.get_by_role("option", name=option, exact=True).click()


def _close_messages(page) -> None:
    """Dismisses the page's error and warning boxes (they would cover the screenshots)."""
    for button in page.locator(".toast-close").all():
        if button.is_visible():
            button.click()
    page.wait_for_function("() => !document.querySelector('.toast-item')")


def _make_identity(page, photos: list[str], label: str, check_faces: bool) -> str:
    """Makes an identity in the Identities tab; returns the status line once it names ``label``."""
    page.locator("input[type=file]").first.set_input_files(photos)
    page.get_by_label("Name (a label").fill(label)
    check = page.get_by_label("Check faces")
    if check.is_enabled() and check.is_checked() != check_faces:
        check.set_checked(check_faces)
    page.get_by_role("button", name="Make identity").click()
    status = page.get_by_label("Status").first
    sync_api.expect(status).to_have_value(re.compile(re.escape(repr(label))), timeout=TIMEOUT_MS)
    return status.input_value()


@pytest.fixture(scope="module")
def people(app_url, browser) -> Path:
    """alice (cast person 1) and bob (person 2) in the app's library, made in the page unless an earlier test made
    them: the library folder."""
    _, folder = app_url
    library = folder / "library"
    missing = [(1, "alice"), (2, "bob")]
    missing = [(person, label) for person, label in missing if not (library / f"{label}.safetensors").exists()]
    if missing:
        page = browser.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.goto(app_url[0])
        for person, label in missing:
            _make_identity(page, _photos(folder, person), label, check_faces=False)
        page.close()
    return library


def test_an_identity_without_photos_is_refused_in_the_page(page, requested, shots):
    page.get_by_role("button", name="Make identity").click()
    page.get_by_text(re.compile(r"photos: .*\bnone\b")).first.wait_for(state="visible")  # the argument, what came
    page.screenshot(path=shots / "error.png")
    assert requested and elsewhere(requested) == []


def test_identities_from_photos_are_saved_to_the_library(app_url, page, requested, shots):
    _, folder = app_url
    library = folder / "library"
    for person, label in [(1, "alice"), (2, "bob")]:
        status = _make_identity(page, _photos(folder, person), label, check_faces=False)
        assert "2 photo" in status and str(library / f"{label}.safetensors") in status
    assert sorted(p.name for p in library.glob("*.safetensors")) == ["alice.safetensors", "bob.safetensors"]
    page.wait_for_function("() => document.querySelectorAll('.gallery-item img, button img').length >= 2")
    page.screenshot(path=shots / "identities.png", full_page=True)
    assert requested and elsewhere(requested) == []


@pytest.mark.skipif(not face_stack_installed(), reason="the face check needs the face stack (magicnaming[faces])")
def test_the_face_check_warns_in_the_page_and_the_identity_is_kept(app_url, page, requested):
    _, folder = app_url
    status = _make_identity(page, _photos(folder, 3), "carol", check_faces=True)  # synthetic faces: dlib finds none
    page.get_by_text("no face found").first.wait_for(state="visible")
    assert (folder / "library" / "carol.safetensors").is_file() and "carol" in status
    _close_messages(page)
    assert requested and elsewhere(requested) == []


def test_generate_draws_an_image_of_an_identity(app_url, people, page, requested, shots):
    _, folder = app_url
    page.get_by_role("tab", name="Generate").click()
    _pick(page, "Identity (empty: none)", ["alice"])
    page.get_by_role("button", name="Generate", exact=True).click()
    assert _image_width(page, "#generate-image") > 0
    page.screenshot(path=shots / "generate.png", full_page=True)
    written = sorted((folder / "outputs").glob("*-generate*.json"))
    assert len(written) == 1 and '"label": "alice"' in written[0].read_text()
    assert requested and elsewhere(requested) == []


def test_a_storyline_of_two_sentences_becomes_a_page_of_two_panels(app_url, people, page, requested, shots):
    _, folder = app_url
    page.get_by_role("tab", name="Story").click()
    _pick(page, "Characters (from the library)", ["alice", "bob"])
    page.get_by_role("button", name="Parse into panels").click()
    sync_api.expect(page.locator("#story-panels")).to_contain_text("<bob>", timeout=TIMEOUT_MS)
    page.get_by_role("button", name="Draw the story").click()
    assert _image_width(page, "#story-page") > 0
    _close_messages(page)
    page.screenshot(path=shots / "story.png", full_page=True)
    shutil.copy(shots / "story.png", shots / "app.png")  # the README's picture of the app
    assert len(list((folder / "outputs").glob("story-*/panels/*.png"))) == 2
    assert requested and elsewhere(requested) == []
