"""``magicnaming app`` in a real browser: the app served on 127.0.0.1 with the tiny test models (a subprocess, as a
user starts it), driven by Playwright with Debian's Chromium (no browser download): photos → identities, an image,
a two-panel story, an error in the page; the page asks no host but 127.0.0.1 for anything (the app turns Gradio's
analytics off itself: the test does not). Screenshots go to a folder under tmp_path; with MAGICNAMING_SCREENSHOTS=docs
the story's is also copied to docs/app.png (the README's screenshot)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from namespace.faces import face_stack_installed

from .conftest import free_port, wait_until_serving

pytest.importorskip("gradio")
sync_api = pytest.importorskip("playwright.sync_api")
CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)"
)
ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    folder = tmp_path_factory.mktemp("app")
    port = free_port()
    command = [sys.executable, "-m", "namespace.cli", "app", "--pipeline", "tiny", "--port", str(port)]
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


def _photos(folder: Path, person: int) -> list[str]:
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


def test_app_in_a_browser(app_url, tmp_path):
    url, folder = app_url
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"], headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.set_default_timeout(TIMEOUT_MS)
        requested = []  # every URL the page asks for: fonts, scripts, images, the API
        page.on("request", lambda request: requested.append(request.url))
        page.goto(url)

        # Identities: an error in the page (no photos), then two identities from photos
        page.get_by_role("button", name="Make identity").click()
        error = page.get_by_text("photos: expected at least one photo")
        error.first.wait_for(state="visible")
        page.screenshot(path=shots / "error.png")
        _close_messages(page)
        for person, label in [(1, "alice"), (2, "bob")]:
            page.locator("input[type=file]").first.set_input_files(_photos(folder, person))
            page.get_by_label("Name (a label").fill(label)
            page.get_by_role("button", name="Make identity").click()
            status = page.get_by_label("Status").first
            if person == 1 and face_stack_installed():  # the face check runs, and says so in the page
                page.get_by_text("no face found").first.wait_for(state="visible")
                _close_messages(page)
                page.get_by_label("Check faces").uncheck()  # the next person is made without the check
            sync_api.expect(status).to_have_value(
                f"saved {label!r} from 2 photo(s) to {folder / 'library' / label}.safetensors", timeout=TIMEOUT_MS
            )
        assert sorted(p.name for p in (folder / "library").glob("*.safetensors")) == [
            "alice.safetensors",
            "bob.safetensors",
        ]
        page.wait_for_function("() => document.querySelectorAll('.gallery-item img, button img').length >= 2")
        page.screenshot(path=shots / "identities.png", full_page=True)

        # Generate: alice in a prompt
        page.get_by_role("tab", name="Generate").click()
        _pick(page, "Identity (empty: none)", ["alice"])
        page.get_by_role("button", name="Generate", exact=True).click()
        assert _image_width(page, "#generate-image") > 0
        page.screenshot(path=shots / "generate.png", full_page=True)
        written = sorted((folder / "outputs").glob("*-generate*.json"))
        assert len(written) == 1 and '"label": "alice"' in written[0].read_text()

        # Story: alice and bob, the example storyline of two sentences → two panels → a page
        page.get_by_role("tab", name="Story").click()
        _pick(page, "Characters (from the library)", ["alice", "bob"])
        page.get_by_role("button", name="Parse into panels").click()
        panels = page.locator("#story-panels")
        sync_api.expect(panels).to_contain_text("<bob>", timeout=TIMEOUT_MS)
        page.get_by_role("button", name="Draw the story").click()
        assert _image_width(page, "#story-page") > 0
        _close_messages(page)
        page.screenshot(path=shots / "story.png", full_page=True)
        assert len(list((folder / "outputs").glob("story-*/panels/*.png"))) == 2
        browser.close()
    elsewhere = [url for url in requested if urllib.parse.urlsplit(url).hostname not in (None, "127.0.0.1")]
    assert requested and elsewhere == []
    if os.environ.get("MAGICNAMING_SCREENSHOTS") == "docs":
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copy(shots / "story.png", ROOT / "docs/app.png")
