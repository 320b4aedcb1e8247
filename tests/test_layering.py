"""The floors depend one way: import-linter's contracts (pyproject.toml's ``[tool.importlinter]``) on the real layout,
plus the module-path strings import-linter cannot see; each rule fails on a planted violation.

The stages live in top-level folders that install as ``namespace.<stage>`` (pyproject's package-dir); import-linter
(grimp) finds a package's modules under its folder, so the check runs on a tree that links them under ``namespace/``.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("data_pipeline", "train", "inference")
CONTRACTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
FLOORS = next(contract for contract in CONTRACTS if contract["id"] == "floors")
# "module" or "module:function" naming a module of this package
MODULE_PATH = re.compile(r"namespace(\.[A-Za-z_]\w*)+(:[A-Za-z_]\w*)?")
# the import_module calls whose module is computed, each checked another way or naming no module of this package
DYNAMIC_IMPORTS = {
    "namespace": "its _EXPORTS table (relative module names), checked as strings",
    "namespace.cli": "its COMMANDS table, checked as strings",
    "namespace.faces.packages": "the face stack's third-party packages (dlib, ...)",
    "namespace.data_pipeline.embedders": "an embedder 'module:function' that a user's config names (their code)",
}


def assemble(tree: Path, planted: dict[str, str] | None = None) -> Path:
    """A folder holding ``namespace/`` as installed: links to the checkout's namespace/ entries and its stage folders,
    plus ``planted`` files (path under namespace/ → text), whose folders become real folders of links."""
    links = {child.name: child for child in (ROOT / "namespace").iterdir() if child.name != "__pycache__"}
    links |= {stage: ROOT / stage for stage in STAGES}
    _link_folder(tree / "namespace", links, planted or {})
    return tree


def _link_folder(folder: Path, links: dict[str, Path], planted: dict[str, str]) -> None:
    folder.mkdir(parents=True)
    heads = {path.split("/", 1)[0] for path in planted}
    for name, target in links.items():
        if name not in heads:
            (folder / name).symlink_to(target)
    for head in heads:
        inner = {path.split("/", 1)[1]: text for path, text in planted.items() if path.startswith(f"{head}/")}
        if not inner:
            (folder / head).write_text(planted[head])
            continue
        children = {c.name: c for c in links[head].iterdir() if c.name != "__pycache__"} if head in links else {}
        _link_folder(folder / head, children, inner)


def lint_imports(tree: Path) -> subprocess.CompletedProcess:
    """``lint-imports`` with pyproject.toml's contracts on ``tree`` (no cache: every tree is new)."""
    command = [Path(sys.executable).with_name("lint-imports"), ROOT / "pyproject.toml", "--no-cache"]
    environment = os.environ | {"PYTHONPATH": str(tree)}
    return subprocess.run(command, capture_output=True, text=True, env=environment, cwd=tree, timeout=300)


def _floors() -> tuple[dict[str, int], dict[int, bool]]:
    """Each child of namespace → its floor (0: the core), and whether each floor's modules are independent."""
    floor_of, independent = {}, {}
    for index, layer in enumerate(reversed(FLOORS["layers"])):
        independent[index] = ":" not in layer
        for name in re.split(r"[|:]", layer):
            floor_of[name.strip()] = index
    return floor_of, independent


def _module_name(tree: Path, path: Path) -> str:
    parts = list(path.relative_to(tree).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _named_modules(module: str, source: str) -> tuple[list[tuple[int, str]], list[int]]:
    """The modules of this package that ``source``'s strings name (line, module) and the lines of its
    ``import_module`` calls on a computed name. Docstrings are prose, not module paths."""
    syntax = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(syntax)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    named, dynamic = [], []
    for node in ast.walk(syntax):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            if MODULE_PATH.fullmatch(node.value):
                named.append((node.lineno, node.value.split(":")[0]))
        elif isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "_EXPORTS" for t in node.targets):
            # a package's lazy exports: attribute → its module, relative to the package
            named += [(v.lineno, f"{module}.{v.value}") for v in node.value.values if isinstance(v, ast.Constant)]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) in (
            "import_module",
        ):
            first = node.args[0] if node.args else None
            if not (isinstance(first, ast.Constant) and isinstance(first.value, str)):
                dynamic.append(node.lineno)
            elif first.value.startswith("."):
                named.append((node.lineno, f"{module}.{first.value.lstrip('.')}"))
    return named, dynamic


def string_violations(tree: Path) -> list[str]:
    """Every module-path string of production code (all of namespace/ but the test kit) that names a module above
    its own floor or a sibling of an independent floor, and every unreviewed ``import_module`` of a computed name."""
    floor_of, independent = _floors()
    core = floor_of["checks"]
    found = []
    for folder, _, names in os.walk(tree / "namespace", followlinks=True):
        for path in (Path(folder) / name for name in sorted(names) if name.endswith(".py")):
            module = _module_name(tree, path)
            child = module.split(".")[1] if "." in module else None  # None: namespace/__init__.py, the core's face
            if child == "testing" or "__pycache__" in path.parts:
                continue
            source_floor = core if child is None else floor_of.get(child)
            named, dynamic = _named_modules(module, path.read_text())
            for line, target in named:
                to = target.split(".")[1]
                target_floor = floor_of.get(to)
                allowed = target_floor is not None and source_floor is not None
                allowed = allowed and (
                    target_floor < source_floor
                    or to == child
                    or (target_floor == source_floor and not independent[source_floor])
                )
                if not allowed:
                    found.append(f"{module} (l.{line}) names {target}")
            if dynamic and module not in DYNAMIC_IMPORTS:
                found += [f"{module} (l.{line}) imports a computed module name" for line in dynamic]
    return found


@pytest.fixture(scope="module")
def main_tree(tmp_path_factory) -> Path:
    return assemble(tmp_path_factory.mktemp("layout"))


def test_the_import_contracts_hold_on_main(main_tree):
    result = lint_imports(main_tree)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout
    assert re.search(r"Analyzed (\d+) files", result.stdout)[1] == str(
        sum(1 for _ in ROOT.glob("namespace/**/*.py")) + sum(1 for s in STAGES for _ in ROOT.glob(f"{s}/**/*.py"))
    )  # the stages were seen under namespace/


def test_the_module_path_strings_respect_the_floors_on_main(main_tree):
    assert string_violations(main_tree) == []


def test_the_command_table_and_the_lazy_exports_are_checked(main_tree):
    """The check sees the strings it guards: the CLI's table names the stages, the lazy exports the core."""
    named, _ = _named_modules("namespace.cli", (ROOT / "namespace/cli.py").read_text())
    assert {"namespace.data_pipeline.commands", "namespace.train.commands", "namespace.demo"} <= {m for _, m in named}
    named, dynamic = _named_modules("namespace", (ROOT / "namespace/__init__.py").read_text())
    assert ("namespace.identity" in {m for _, m in named}) and dynamic


def test_the_forbidden_contract_covers_every_child_but_the_test_kit():
    (test_kit,) = [contract for contract in CONTRACTS if contract["id"] == "test-kit"]
    assert "namespace.*" in test_kit["source_modules"] and test_kit["forbidden_modules"] == ["namespace.testing"]
    assert FLOORS["exhaustive"] and FLOORS["exhaustive_ignores"] == ["testing"]


PLANTED = {
    "a core module imports the demo": (
        {"encoder/planted.py": "from namespace.demo import run\n"},
        "namespace.encoder is not allowed to import namespace.demo",
    ),
    "a stage imports another stage": (
        {"data_pipeline/planted.py": "from namespace.train import results\n"},
        "namespace.data_pipeline is not allowed to import namespace.train",
    ),
    "the demo imports the command line": (
        {"demo/planted.py": "import namespace.cli\n"},
        "namespace.demo is not allowed to import namespace.cli",
    ),
    "the miniature world imports the model-name resolver above it": (
        {"miniature/planted.py": "from namespace.model_names import parse_pipeline\n"},
        "namespace.miniature is not allowed to import namespace.model_names",
    ),
    "a module with no floor": ({"planted.py": "X = 1\n"}, "namespace.planted"),
    "production code imports the test kit": (
        {"inference/planted.py": "from namespace.testing import tiny_sdxl_pipeline\n"},
        "namespace.inference.planted -> namespace.testing",
    ),
}


@pytest.mark.parametrize("rule", PLANTED)
def test_a_planted_import_breaks_a_contract(rule, tmp_path):
    planted, message = PLANTED[rule]
    result = lint_imports(assemble(tmp_path, planted))
    assert result.returncode != 0 and message in result.stdout, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("planted", "message"),
    [
        ({"miniature/planted.py": 'ENTRY = "namespace.demo:main"\n'}, "namespace.miniature.planted (l.1) names "),
        ({"inference/planted.py": 'COMMAND = ["-m", "namespace.cli"]\n'}, "names namespace.cli"),
        ({"train/planted.py": 'ENTRY = "namespace.inference.commands:main"\n'}, "names namespace.inference"),
        ({"encoder/planted.py": 'HELPER = "namespace.testing.full_size"\n'}, "names namespace.testing"),
        ({"__init__.py": '_EXPORTS = {"demo": "demo"}\n'}, "namespace (l.1) names namespace.demo"),  # lazy exports
        (
            {"faces/planted.py": "import importlib\n\ndef load(name):\n    return importlib.import_module(name)\n"},
            "namespace.faces.planted (l.4) imports a computed module name",
        ),
    ],
)
def test_a_planted_module_path_string_fails_the_string_check(planted, message, tmp_path):
    found = string_violations(assemble(tmp_path, planted))
    assert any(message in line for line in found), found
