"""A griffe extension for the API reference: the stage folders as ``namespace.<stage>``.

``namespace.data_pipeline``, ``namespace.train`` and ``namespace.inference`` live in the folders beside ``namespace/``
(pyproject.toml's package-dir); at import time a meta-path finder maps them. Griffe reads packages from disk, so
when it loads ``namespace`` this extension loads each stage folder as a submodule of it (statically: nothing is
imported, no model library loads).
"""

from __future__ import annotations

from pathlib import Path

import griffe

STAGES = ("data_pipeline", "train", "inference")


class CheckoutStages(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: object) -> None:
        if pkg.name != "namespace" or pkg.filepath is None:
            return
        root = Path(str(pkg.filepath)).parent.parent
        for stage in STAGES:
            if stage not in pkg.members and (root / stage / "__init__.py").is_file():
                # griffe has no public call that loads a folder as a submodule of a loaded package
                module = loader._load_module(stage, root / stage / "__init__.py", parent=pkg)
                pkg.set_member(stage, module)
