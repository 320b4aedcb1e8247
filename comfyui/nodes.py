"""The pack's ComfyUI nodes: the only module that imports ComfyUI (``comfy_api``, ``folder_paths``, ``comfy``).

Each node is built from its plain-data spec (``specs.py``) and runs its function in ``operations.py``: a V3 node
(``comfy_api.latest.io.ComfyNode``) where ComfyUI has the V3 API, a V1 node (``INPUT_TYPES`` / ``FUNCTION``) on an
older ComfyUI. Model files live in ``models/magicnaming`` (encoder folders; identity files anywhere under it) and
identities are saved into ``output/magicnaming``; both are searched by Load Identity.
"""

from __future__ import annotations

import os
from pathlib import Path

import comfy.model_management
import folder_paths

from . import operations
from .specs import CATEGORY, NODES, NodeSpec, Port

try:
    from comfy_api.latest import ComfyExtension, io
except ImportError:  # a ComfyUI from before the V3 API: V1 nodes only
    ComfyExtension = io = None

FOLDER = "magicnaming"


def _register_folder() -> None:
    """``models/magicnaming`` as a model folder (extra_model_paths.yaml may add more under the key ``magicnaming``)."""
    if FOLDER not in folder_paths.folder_names_and_paths:
        default = os.path.join(folder_paths.models_dir, FOLDER)
        folder_paths.folder_names_and_paths[FOLDER] = ([default], {".safetensors"})


def _model_folders() -> list[str]:
    return folder_paths.get_folder_paths(FOLDER)


def _identity_folders() -> list[str]:
    return [*_model_folders(), os.path.join(folder_paths.get_output_directory(), FOLDER)]


def _file_choices(kind: str) -> list[str]:
    if kind == "encoders":
        return operations.encoder_names(_model_folders())
    return operations.identity_names(_identity_folders())


def _resolve(kind: str, name: str) -> Path:
    """The file or folder a combo's choice names, searched in the folders it was listed from."""
    folders = _model_folders() if kind == "encoders" else _identity_folders()
    for folder in folders:
        candidate = Path(folder, name).resolve()
        if Path(folder).resolve() in candidate.parents and candidate.exists():
            return candidate
    raise FileNotFoundError(f"{name!r} is not in {', '.join(folders)}")


def run(spec: NodeSpec, **inputs) -> tuple:
    """Runs a node: files chosen in combos become paths, then the spec's operation runs."""
    keywords = dict(inputs)
    for port in spec.inputs:
        if port.files is not None:
            path = _resolve(port.files, keywords.pop(port.name))
            keywords["encoder_path" if port.files == "encoders" else "identity_path"] = path
    if spec.operation == "load_encoder":
        keywords["device"] = comfy.model_management.get_torch_device()
    if spec.operation == "save_identity":
        operations.save_identity(**keywords, output_folder=Path(folder_paths.get_output_directory()))
        return ()
    return getattr(operations, spec.operation)(**keywords)


# -- V3 -------------------------------------------------------------------------------------------------------------


def _v3_input(port: Port):
    common = {"optional": port.optional, "tooltip": port.tooltip or None}
    numbers = {"default": port.default, "min": port.minimum, "max": port.maximum, "step": port.step}
    if port.type == "FLOAT":
        return io.Float.Input(port.name, **common, **numbers)
    if port.type == "INT":
        return io.Int.Input(port.name, **common, **numbers, control_after_generate=port.name == "seed")
    if port.type == "STRING":
        return io.String.Input(port.name, **common, default=port.default)
    if port.type == "COMBO":
        options = _file_choices(port.files) if port.files else list(port.options)
        return io.Combo.Input(port.name, options=options, default=port.default, **common)
    if port.type == "IMAGE":
        return io.Image.Input(port.name, **common)
    if port.type == "CONDITIONING":
        return io.Conditioning.Input(port.name, **common)
    return io.Custom(port.type).Input(port.name, **common)


def _v3_output(port: Port):
    if port.type == "CONDITIONING":
        return io.Conditioning.Output(display_name=port.name)
    return io.Custom(port.type).Output(display_name=port.name)


def _v3_node(spec: NodeSpec) -> type:
    def define_schema(cls):
        return io.Schema(
            node_id=spec.node_id,
            display_name=spec.display_name,
            category=CATEGORY,
            description=spec.description,
            inputs=[_v3_input(port) for port in spec.inputs],
            outputs=[_v3_output(port) for port in spec.outputs],
            is_output_node=spec.output_node,
        )

    def execute(cls, **inputs):
        return io.NodeOutput(*run(spec, **inputs))

    members = {"define_schema": classmethod(define_schema), "execute": classmethod(execute)}
    return type(spec.node_id, (io.ComfyNode,), members)


# -- V1 -------------------------------------------------------------------------------------------------------------


def _v1_input(port: Port) -> tuple:
    if port.type == "COMBO":
        options = _file_choices(port.files) if port.files else list(port.options)
        return (options, {"default": port.default} if port.default is not None else {})
    settings = {"default": port.default, "min": port.minimum, "max": port.maximum, "step": port.step}
    settings["tooltip"] = port.tooltip or None
    return (port.type, {key: value for key, value in settings.items() if value is not None})


def _v1_node(spec: NodeSpec) -> type:
    def input_types(cls):
        required = {p.name: _v1_input(p) for p in spec.inputs if not p.optional}
        optional = {p.name: _v1_input(p) for p in spec.inputs if p.optional}
        return {"required": required, "optional": optional}

    def execute(self, **inputs):
        return run(spec, **inputs)

    members = {
        "INPUT_TYPES": classmethod(input_types),
        "RETURN_TYPES": tuple(port.type for port in spec.outputs),
        "RETURN_NAMES": tuple(port.name for port in spec.outputs),
        "FUNCTION": "execute",
        "CATEGORY": CATEGORY,
        "OUTPUT_NODE": spec.output_node,
        "DESCRIPTION": spec.description,
        "execute": execute,
    }
    return type(spec.node_id, (), members)


_register_folder()
NODE_CLASSES = [(_v3_node if io is not None else _v1_node)(spec) for spec in NODES]
NODE_CLASS_MAPPINGS = {node.__name__: node for node in NODE_CLASSES}
NODE_DISPLAY_NAME_MAPPINGS = {spec.node_id: spec.display_name for spec in NODES}

comfy_entrypoint = None
if ComfyExtension is not None:

    class MagicNamingExtension(ComfyExtension):
        """The V3 extension: the pack's nodes."""

        async def get_node_list(self) -> list[type]:
            return list(NODE_CLASSES)

    async def comfy_entrypoint() -> MagicNamingExtension:
        """The V3 entry point ComfyUI calls when the pack has no ``NODE_CLASS_MAPPINGS``."""
        return MagicNamingExtension()
