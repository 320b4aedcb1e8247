"""Packaging: one distribution, stages under `namespace`, a light core without Lightning, the console script; the
sdist and the wheel a release would upload (built here, offline), their contents and metadata."""

import importlib.util
import shutil
import site
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, cwd) -> str:
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=True)
    return result.stdout.strip()


@pytest.mark.slow
def test_stages_are_installed_under_namespace(tmp_path):
    out = run_python(
        "import importlib.util, namespace.data_pipeline as d, namespace.train as t, namespace.inference as i\n"
        "print(d.__file__, t.__file__, i.__file__)\n"
        "print([importlib.util.find_spec(m) for m in ('train', 'inference', 'data_pipeline')])",
        cwd=tmp_path,  # not the repository root: nothing may come from the current folder
    )
    files, specs = out.splitlines()
    assert files.split() == [str(ROOT / s / "__init__.py") for s in ("data_pipeline", "train", "inference")]
    assert specs == "[None, None, None]"


@pytest.mark.slow
def test_core_imports_no_lightning_and_stays_light(tmp_path):
    out = run_python(
        "import sys, namespace as ns\n"
        "heavy = ('torch', 'open_clip', 'diffusers', 'transformers', 'lightning')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "ns.prepend, ns.NameEncoder, ns.Identity, ns.name_embeddings, ns.NameSpaceStatistics\n"
        "import namespace.testing\n"
        "from namespace.testing import tiny_name_encoder, tiny_sdxl_pipeline\n"
        "tiny_name_encoder(tiny_sdxl_pipeline())\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'pytorch_lightning', 'pyspark')))",
        cwd=tmp_path,
    )
    on_import, after_use = out.splitlines()[-2:]
    assert on_import == "[]"  # `import namespace` pulls in no model library
    assert after_use == "[]"  # the core and the test kit never import Lightning or Spark


def test_public_api_names():
    import namespace as ns

    for name in ("prepend", "guide", "normalize", "interpolate", "mix", "name_embeddings", "NameEncoder", "Identity"):
        assert callable(getattr(ns, name)), name
    with pytest.raises(AttributeError, match="has no attribute 'prepnd'"):
        ns.prepnd  # noqa: B018


def test_console_script_is_installed():
    script = Path(sys.executable).with_name("magicnaming")
    assert script.is_file()
    result = subprocess.run([script, "--help"], capture_output=True, text=True, check=True)
    assert "demo" in result.stdout and "generate" in result.stdout
    assert importlib.util.find_spec("namespace.cli") is not None


@pytest.fixture(scope="module")
def distributions(tmp_path_factory):
    """The sdist and the wheel `python -m build` makes from a copy of the checkout, and the build's output."""
    source, dist = tmp_path_factory.mktemp("source") / "magicnaming", tmp_path_factory.mktemp("dist")
    # a copy: building writes magicnaming.egg-info next to pyproject.toml, which must not touch the checkout
    ignored = (".git", ".venv", "*.egg-info", "build", "dist", "__pycache__", ".*_cache", "demo-output", "demo-sdxl")
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*ignored))
    # --no-isolation: the build backend comes from this environment (tests are offline; CI's `make install` has it)
    build = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(source)],
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (sdist,), (wheel,) = dist.glob("*.tar.gz"), dist.glob("*.whl")
    return sdist, wheel, build.stdout + build.stderr


@pytest.mark.slow
def test_the_build_emits_no_warning(distributions):
    output = distributions[2]
    # setuptools warns when a folder under a package (model_configs/) is not in `packages`; `build` prints WARNING
    assert [line for line in output.splitlines() if "WARNING" in line or "absent from the `packages`" in line] == []


@pytest.mark.slow
def test_the_wheel_holds_namespace_and_its_model_configs_only(distributions):
    _, wheel, _ = distributions
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        configs = {Path(name).name: archive.read(name) for name in names if "/model_configs/" in name}
    assert {name.split("/")[0] for name in names} == {"namespace", f"{wheel.name.split('-py3')[0]}.dist-info"}
    for stage in ("data_pipeline", "train", "inference"):  # the stages install under namespace, nowhere else
        assert f"namespace/{stage}/__init__.py" in names
    shipped = {path.name: path.read_bytes() for path in (ROOT / "namespace/encoder/model_configs").glob("*.json")}
    assert configs == shipped and len(shipped) == 3  # the tiny towers and the tiny CLIP with the real vocabulary
    assert "namespace/inference/evaluation/__init__.py" in names and "namespace/faces/__init__.py" in names
    assert any(name.endswith(".dist-info/licenses/LICENSE") for name in names)  # the Apache-2.0 text travels along


@pytest.mark.slow
def test_the_sdist_builds_the_same_package(distributions):
    sdist, _, _ = distributions
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"pyproject.toml", "README.md", "namespace/encoder/model_configs/MagicNaming-Tiny-L.json"} <= names
    assert {"data_pipeline/__init__.py", "train/__init__.py", "inference/__init__.py"} <= names


@pytest.mark.slow
def test_the_metadata_passes_twine_check(distributions):
    sdist, wheel, _ = distributions
    check = subprocess.run(
        [sys.executable, "-m", "twine", "check", "--strict", str(sdist), str(wheel)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count("PASSED") == 2


@pytest.fixture(scope="module")
def regular_install(distributions, tmp_path_factory):
    """A virtual environment holding the built wheel as ``pip install .`` leaves it: its own site-packages first, then
    this environment's (the dependencies), as ``--system-site-packages`` would add a system's. Returns its bin/."""
    _, wheel, _ = distributions
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    where = [python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]
    purelib = subprocess.run(where, capture_output=True, text=True, check=True).stdout.strip()
    # a path line of a .pth file runs none of that folder's own .pth files: this environment's editable install of
    # magicnaming (its import finder) stays out, its dependencies come in
    Path(purelib, "dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    install = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", str(wheel)]
    done = subprocess.run(install, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return venv / "bin", Path(purelib)


IMPORT_STAGES = (
    "import sys, namespace, namespace.inference, namespace.train, namespace.data_pipeline as d\n"
    "print(repr(sys.path[0]), namespace.__file__, d.__file__)\n"
    "print(any('editable' in type(finder).__module__ for finder in sys.meta_path))"
)


@pytest.mark.slow
def test_a_regular_install_imports_the_stages_from_the_repository_root(regular_install):
    """``pip install .`` then ``python`` in the checkout's root: the checkout's namespace/ shadows the installed one
    (the current folder is first on sys.path), and its stages come from the folders beside it."""
    bin_dir, _ = regular_install
    done = subprocess.run([bin_dir / "python", "-c", IMPORT_STAGES], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    where, editable = done.stdout.splitlines()
    assert where.split() == ["''", str(ROOT / "namespace/__init__.py"), str(ROOT / "data_pipeline/__init__.py")]
    assert editable == "False"  # a regular install: no editable finder maps the stages


@pytest.mark.slow
def test_a_regular_install_imports_the_installed_stages_elsewhere(regular_install, tmp_path):
    bin_dir, purelib = regular_install
    done = subprocess.run([bin_dir / "python", "-c", IMPORT_STAGES], cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    where, editable = done.stdout.splitlines()
    assert where.split() == [
        "''",
        str(purelib / "namespace/__init__.py"),
        str(purelib / "namespace/data_pipeline/__init__.py"),
    ]
    assert editable == "False"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("magicnaming --help", "generate"),
        # python -m puts the current folder first on sys.path, as python -c does: the subcommands import the stages
        ("python -m namespace.cli generate --help", "--device"),
        ("python -m namespace.cli data sample --help", "--scratch"),
    ],
)
def test_a_regular_install_runs_the_command_from_the_repository_root(regular_install, command, expected):
    bin_dir, _ = regular_install
    program, *arguments = command.split()
    done = subprocess.run([bin_dir / program, *arguments], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert expected in done.stdout


def test_the_checkout_finder_maps_the_stages_as_pyproject_does():
    import namespace

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    package_dir = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    stages = {name: folder for name, folder in package_dir.items() if name != "namespace"}
    assert stages == {f"namespace.{stage}": stage for stage in namespace._STAGES}


def test_every_package_folder_is_listed_for_setuptools():
    """A new package folder (one with an ``__init__.py``) not in pyproject's ``packages`` would be left out of the
    wheel and fail only after a regular install (``namespace.text_sides`` once did)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {f"namespace.{stage}": ROOT / folder for stage, folder in
               (("data_pipeline", "data_pipeline"), ("train", "train"), ("inference", "inference"))}  # fmt: skip
    folders["namespace"] = ROOT / "namespace"
    found = set()
    for package, folder in folders.items():
        for init in folder.rglob("__init__.py"):
            parts = init.parent.relative_to(folder).parts
            if "__pycache__" not in parts:
                found.add(".".join((package, *parts)))
    listed = set(setuptools["packages"])
    assert sorted(found - listed) == []
    assert setuptools["package-dir"] == {package: str(folder.relative_to(ROOT)) for package, folder in folders.items()}
