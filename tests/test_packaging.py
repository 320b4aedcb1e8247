"""Packaging: one distribution, stages under `namespace`, a light core without Lightning, the console script."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_python(code: str, cwd) -> str:
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=True)
    return result.stdout.strip()


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


def test_core_modules_do_not_import_the_stages():
    offenders = []
    for path in (ROOT / "namespace").rglob("*.py"):
        text = path.read_text()
        for stage in ("data_pipeline", "train", "inference"):
            if f"from namespace.{stage}" in text or f"import namespace.{stage}" in text or f"from ..{stage}" in text:
                offenders.append(f"{path.relative_to(ROOT)} imports {stage}")
    assert offenders == []


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
