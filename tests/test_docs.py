"""The documentation: every Python snippet of README.md and docs/ runs on the tiny or miniature models (or says,
visibly, what it needs instead), the site builds with ``mkdocs build --strict``, and the front door and the map keep
their size.

Snippets follow pytest-markdown-docs' fence options, so ``pytest --markdown-docs README.md docs`` runs the same
ones: a ```python fence runs; ```python notest does not, and the paragraph before it must say what it needs;
```python continuation runs after the snippets before it on the page.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
MAPS = [ROOT / "README.md", ROOT / "ARCHITECTURE.md", ROOT / "tests" / "README.md"]
NEEDS = re.compile(r"[Nn]eeds\s+(the\s+full-size\s+SDXL\s+weights|photos\s+of\s+real\s+people)")
PYTHON = {"python", "py", "python3"}


@dataclass(frozen=True)
class Snippet:
    page: Path
    line: int  # 1-based line of the fence
    code: str  # with the snippets it continues, line numbers kept
    options: frozenset[str]
    before: str  # the text of the paragraph just above the fence

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def snippets(page: Path) -> list[Snippet]:
    """The Python fences of a page, as pytest-markdown-docs reads them."""
    found, previous, paragraph = [], "", ""
    for token in MarkdownIt("commonmark").parse(page.read_text(encoding="utf-8")):
        if token.type == "inline":
            paragraph = token.content
        if token.type != "fence" or not token.map:
            continue
        language, *options = token.info.split() or [""]
        if language not in PYTHON:
            continue
        start = token.map[0] + 1  # the code starts on the line after the fence
        code = previous if "continuation" in options else ""
        code += "\n" * (start - code.count("\n")) + token.content
        found.append(Snippet(page, start, code, frozenset(options), paragraph))
        previous = code
    return found


ALL = [snippet for page in PAGES for snippet in snippets(page)]
RUN = [snippet for snippet in ALL if "notest" not in snippet.options]
NOT_RUN = [snippet for snippet in ALL if "notest" in snippet.options]


def test_the_readme_and_the_docs_hold_runnable_snippets():
    assert [s for s in RUN if s.page.name == "README.md"], "README.md needs its hello world as a ```python fence"
    assert len(RUN) >= 5


@pytest.mark.parametrize("snippet", RUN, ids=[s.id for s in RUN])
def test_snippet_runs(snippet: Snippet, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # whatever a snippet saves lands here
    exec(compile(snippet.code, str(snippet.page), "exec"), {"__name__": "__main__"})


@pytest.mark.parametrize("snippet", NOT_RUN, ids=[s.id for s in NOT_RUN])
def test_a_snippet_not_run_says_what_it_needs(snippet: Snippet):
    assert NEEDS.search(snippet.before), (
        f"{snippet.id}: a ```python notest fence needs a visible note in the paragraph above it, such as "
        f"'needs the full-size SDXL weights'; found {snippet.before!r}"
    )
    compile(snippet.code, str(snippet.page), "exec")  # still valid Python


def test_the_front_door_and_the_map_keep_their_size():
    assert len((ROOT / "README.md").read_bytes()) <= 15_000
    architecture = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8").splitlines()
    assert len(architecture) <= 150
    assert [number for number, line in enumerate(architecture, 1) if len(line) > 120] == []


LINK = re.compile(r"\]\((?!https?://|mailto:|#)([^)\s]+)\)")


@pytest.mark.parametrize("page", MAPS, ids=[str(page.relative_to(ROOT)) for page in MAPS])
def test_the_links_outside_the_site_point_at_files(page: Path):
    """README.md, ARCHITECTURE.md and tests/README.md are not part of the site: mkdocs does not check their links."""
    text = page.read_text(encoding="utf-8")
    missing = [target for target in LINK.findall(text) if not (page.parent / target.split("#")[0]).exists()]
    assert missing == []


COMMAND = re.compile(r"(?:magicnaming|benchmarks/\w+\.py)\b[^`\n]*")
KEBAB_FLAG = re.compile(r"\s(--[a-z0-9]+-[a-z0-9-]+)")


def test_commands_in_the_docs_use_one_flag_style():
    """snake_case flags, --dtype, booleans as `--flag true`: the CLI style of magicnaming and the benchmarks."""
    wrong = []
    for page in PAGES:
        for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
            for command in COMMAND.findall(line):
                flags = KEBAB_FLAG.findall(command) + re.findall(r"\s(--precision)\b", command)
                wrong += [f"{page.relative_to(ROOT)}:{number}: {flag}" for flag in flags]
    assert wrong == []


def test_the_site_builds_strict(tmp_path):
    """`make docs`: mkdocs build --strict (a broken link, anchor or API reference fails), into a tmp folder."""
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    api = (site / "api" / "index.html").read_text(encoding="utf-8")
    for name in ("namespace.prepend", "namespace.NameEncoder", "namespace.Identity", "namespace.inference.MagicNaming"):
        assert f'id="{name}"' in api, name
    pages = {page.relative_to(ROOT / "docs").with_suffix("").as_posix() for page in ROOT.glob("docs/*.md")}
    built = {path.parent.relative_to(site).as_posix() for path in site.glob("*/index.html")}
    assert pages - {"index"} <= built
