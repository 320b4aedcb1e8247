"""A dev script (not shipped): the screenshot of docs/comfyui.md, taken of ComfyUI's own page.

It starts ComfyUI (the checkout and the Python given) on CPU, bound to 127.0.0.1, with a temporary base directory
whose ``custom_nodes/magicnaming`` links this repository's ``comfyui/`` pack, so nothing is written into the ComfyUI
checkout; lists the pack's nodes from ``/object_info``; opens the page in Debian's Chromium through Playwright; loads
the example API-format workflow with the frontend's ``app.loadApiJson``; checks every node and link is on the canvas;
saves a PNG; and stops ComfyUI. Chromium resolves no host but 127.0.0.1 and every other request is aborted.

    .venv/bin/python docs/_build/comfyui_screenshot.py /path/to/ComfyUI /path/to/ComfyUI/venv/bin/python

ComfyUI's Python must import ``namespace``: the script puts this repository on its ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from PIL import Image
from playwright.sync_api import Route, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
PACK_MODULE = "custom_nodes.magicnaming"
# the first run's template dialog and the minimap would cover the graph; the whole graph fits the page at about half
# size, where the canvas would draw nodes without their text (its level of detail follows the font size on screen)
SETTINGS = {
    "Comfy.TutorialCompleted": True,
    "Comfy.Minimap.Visible": False,
    "Comfy.Graph.CanvasInfo": False,  # the frame rate in a corner
    "LiteGraph.Canvas.MinFontSizeForLOD": 1,
}
MAX_BYTES = 400_000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def base_directory(root: Path) -> Path:
    """A ComfyUI base directory (models, custom_nodes, input, output, user) holding only the pack and settings."""
    (root / "custom_nodes").mkdir(parents=True)
    (root / "custom_nodes" / "magicnaming").symlink_to(ROOT / "comfyui", target_is_directory=True)
    (root / "user" / "default").mkdir(parents=True)
    (root / "user" / "default" / "comfy.settings.json").write_text(json.dumps(SETTINGS), encoding="utf-8")
    return root


def start_comfyui(comfyui: Path, python: Path, base: Path, port: int, log: Path) -> subprocess.Popen:
    command = [str(python), "main.py", "--cpu", "--listen", HOST, "--port", str(port)]
    command += ["--base-directory", str(base), "--database-url", "sqlite:///:memory:"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no __pycache__ in the ComfyUI checkout
    with log.open("wb") as sink:  # its own process group: stopping it stops its children too
        return subprocess.Popen(
            command, cwd=comfyui, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def get_json(url: str) -> dict:
    assert urllib.parse.urlsplit(url).hostname == HOST, url
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)


def wait_for_object_info(url: str, process: subprocess.Popen, log: Path, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"ComfyUI exited with {process.returncode}:\n{log.read_text(errors='replace')[-4000:]}")
        try:
            return get_json(f"{url}/object_info")
        except (urllib.error.URLError, ConnectionError):
            time.sleep(2)
    raise TimeoutError(
        f"ComfyUI did not serve {url} within {timeout:.0f} s:\n{log.read_text(errors='replace')[-4000:]}"
    )


def pack_nodes(object_info: dict, workflow: dict) -> dict[str, str]:
    """The pack's nodes as ComfyUI lists them (class name -> display name); every node of the workflow must exist."""
    missing = sorted({node["class_type"] for node in workflow.values()} - set(object_info))
    if missing:
        raise RuntimeError(f"ComfyUI's /object_info lacks the workflow's nodes {missing}: did the pack import?")
    return {name: info["display_name"] for name, info in object_info.items() if info["python_module"] == PACK_MODULE}


def screenshot(url: str, workflow: dict, name: str, output: Path, chromium: Path, size: tuple[int, int]) -> list[str]:
    """Loads the workflow into ComfyUI's canvas and saves a screenshot; returns the requests it refused."""
    refused: list[str] = []

    def local_only(route: Route) -> None:
        if urllib.parse.urlsplit(route.request.url).hostname == HOST:
            route.continue_()
        else:
            refused.append(urllib.parse.urlsplit(route.request.url).hostname or route.request.url)
            route.abort()

    resolver = f"--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE {HOST}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), args=["--no-sandbox", resolver], headless=True
        )
        try:
            # drawn at twice the size, then scaled down: the small text stays legible
            page = browser.new_page(viewport={"width": size[0], "height": size[1]}, device_scale_factor=2)
            page.route("**/*", local_only)
            page.goto(url, wait_until="networkidle", timeout=180_000)
            page.wait_for_function("window.app?.graph && window.app.canvas", timeout=180_000)
            shown = page.evaluate(
                """async ([workflow, name]) => {
                    await window.app.loadApiJson(workflow, name);
                    const graph = window.app.graph;
                    return {nodes: graph._nodes.map((node) => node.type), links: graph.links.size};
                }""",
                [workflow, name],
            )
            wanted_links = sum(
                isinstance(value, list) for node in workflow.values() for value in node["inputs"].values()
            )
            if sorted(shown["nodes"]) != sorted(node["class_type"] for node in workflow.values()):
                raise RuntimeError(f"the canvas shows {shown['nodes']}, not the workflow's nodes")
            if shown["links"] != wanted_links:
                raise RuntimeError(f"the canvas shows {shown['links']} links, the workflow has {wanted_links}")
            page.wait_for_timeout(1500)  # the nodes get their sizes when first drawn: fit the view after that
            # the canvas's "zoom to fit" (the selection, or every node when none is selected), with less margin
            page.evaluate("""() => {
                window.app.canvas.deselectAll();
                window.app.canvas.fitViewToSelectionAnimated({zoom: 0.92});
            }""")
            page.wait_for_timeout(3000)  # the zoom is animated
            page.screenshot(path=str(output))
        finally:
            browser.close()
    Image.open(output).convert("RGB").resize(size, Image.Resampling.LANCZOS).save(output, optimize=True)
    return refused


def shrink(path: Path, max_bytes: int) -> None:
    """A 256-colour palette when the PNG is too large for the docs (the UI has few colours)."""
    if path.stat().st_size > max_bytes:
        Image.open(path).convert("RGB").quantize(colors=256).save(path, optimize=True)


def main(
    comfyui: Path, python: Path, workflow: Path, output: Path, chromium: Path, size: tuple[int, int], timeout: float
) -> None:
    steps = json.loads(workflow.read_text(encoding="utf-8"))
    output.parent.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://{HOST}:{port}"
    with tempfile.TemporaryDirectory(prefix="comfyui-screenshot-") as temporary:
        base = base_directory(Path(temporary) / "base")
        log = Path(temporary) / "comfyui.log"
        process = start_comfyui(comfyui, python, base, port, log)
        try:
            nodes = pack_nodes(wait_for_object_info(url, process, log, timeout), steps)
            print(f"ComfyUI's /object_info lists {len(nodes)} nodes of {PACK_MODULE}:")
            for name, display in nodes.items():
                print(f"  {name}: {display}")
            refused = screenshot(url, steps, workflow.name, output, chromium, size)
        finally:
            stop(process)
    shrink(output, MAX_BYTES)
    print(f"refused {len(refused)} requests to hosts other than {HOST}: {sorted(set(refused))}")
    print(f"wrote {output} ({output.stat().st_size} bytes)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("comfyui", type=Path, help="a ComfyUI checkout (the folder of main.py)")
    parser.add_argument("python", type=Path, help="the Python that runs ComfyUI")
    parser.add_argument("--workflow", type=Path, default=ROOT / "examples" / "comfyui" / "magicnaming_api.json")
    parser.add_argument("--output", type=Path, default=ROOT / "docs" / "images" / "comfyui-workflow.png")
    parser.add_argument("--chromium", type=Path, default=Path("/usr/bin/chromium"))
    parser.add_argument("--width", type=int, default=1600)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("--timeout", type=float, default=300, help="seconds to wait for ComfyUI to serve")
    args = parser.parse_args()
    main(args.comfyui, args.python, args.workflow, args.output, args.chromium, (args.width, args.height), args.timeout)
