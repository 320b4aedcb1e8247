"""The pack's nodes as plain data: ids, display names, inputs and outputs with their ComfyUI types and widgets.

No ComfyUI and no torch here: ``nodes.py`` turns each spec into a V3 node (or a V1 node on a ComfyUI without the V3
API), and the repository's tests read the same specs to check the example workflow without ComfyUI installed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ENCODER = "MAGICNAMING_ENCODER"  # a loaded NameEncoder
IDENTITY = "MAGICNAMING_IDENTITY"  # a namespace.Identity
CUSTOM_TYPES = (ENCODER, IDENTITY)
CATEGORY = "MagicNaming"


@dataclass(frozen=True)
class Port:
    """One input or output of a node.

    Attributes:
        name: the input's id (the keyword ``execute`` receives) or the output's name.
        type: a ComfyUI type (``CONDITIONING``, ``IMAGE``, ``FLOAT``, ``INT``, ``STRING``, ``COMBO``) or one of
            :data:`CUSTOM_TYPES`.
        default, minimum, maximum, step: the widget's settings (numbers, strings, combos).
        options: a combo's fixed choices.
        files: a combo listing files instead: ``"encoders"`` or ``"identities"`` (the folders the pack registers).
        optional: an input that may be left unconnected.
        tooltip: shown in ComfyUI when hovering the input.
    """

    name: str
    type: str
    default: object = None
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    options: tuple[str, ...] = ()
    files: str | None = None
    optional: bool = False
    tooltip: str = ""


@dataclass(frozen=True)
class NodeSpec:
    """One node: ``node_id`` is its ``class_type`` in workflows; ``operation`` the function of ``operations.py``."""

    node_id: str
    display_name: str
    description: str
    operation: str
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...] = ()
    output_node: bool = False
    input_types: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_types", {port.name: port.type for port in self.inputs})


def _encoder(tooltip: str = "a name encoder from Load Name Encoder") -> Port:
    return Port("name_encoder", ENCODER, tooltip=tooltip)


def _identity(name: str = "identity", optional: bool = False) -> Port:
    return Port(name, IDENTITY, optional=optional)


def _weight(name: str, default: float) -> Port:
    return Port(name, "FLOAT", default=default, minimum=-10.0, maximum=10.0, step=0.05, tooltip="the mix weight")


NODES: tuple[NodeSpec, ...] = (
    NodeSpec(
        "MagicNamingLoadEncoder",
        "Load Name Encoder",
        "Loads a MagicNaming name encoder folder (config.json + model.safetensors) from models/magicnaming.",
        "load_encoder",
        inputs=(Port("encoder_name", "COMBO", files="encoders", tooltip="a folder in models/magicnaming"),),
        outputs=(Port("name_encoder", ENCODER),),
    ),
    NodeSpec(
        "MagicNamingIdentityFromImages",
        "Identity from Images",
        "Encodes reference photos of one person (an IMAGE batch) into an identity; their names are averaged.",
        "identity_from_images",
        inputs=(
            _encoder(),
            Port("images", "IMAGE", tooltip="one or several photos of the same person"),
            Port("label", "STRING", default="identity"),
            Port(
                "crop",
                "COMBO",
                default="encoder",
                options=("encoder", "none", "loose", "aligned"),
                tooltip="crop each photo to its face first; 'encoder': as the encoder was trained (needs the faces "
                "extra unless 'none')",
            ),
        ),
        outputs=(Port("identity", IDENTITY),),
    ),
    NodeSpec(
        "MagicNamingLoadIdentity",
        "Load Identity",
        "Loads an identity file (.safetensors) from models/magicnaming/identities or output/magicnaming.",
        "load_identity",
        inputs=(Port("identity_file", "COMBO", files="identities"),),
        outputs=(Port("identity", IDENTITY),),
    ),
    NodeSpec(
        "MagicNamingSaveIdentity",
        "Save Identity",
        "Saves an identity file into ComfyUI's output folder under a new numbered name (never overwrites).",
        "save_identity",
        inputs=(_identity(), Port("filename_prefix", "STRING", default="magicnaming/identity")),
        output_node=True,
    ),
    NodeSpec(
        "MagicNamingMixIdentities",
        "Mix Identities",
        "A weighted mix of two to four identities (a new, fictional person).",
        "mix_identities",
        inputs=(
            _identity("identity_1"),
            _identity("identity_2"),
            _weight("weight_1", 1.0),
            _weight("weight_2", 1.0),
            _identity("identity_3", optional=True),
            _weight("weight_3", 1.0),
            _identity("identity_4", optional=True),
            _weight("weight_4", 1.0),
        ),
        outputs=(Port("identity", IDENTITY),),
    ),
    NodeSpec(
        "MagicNamingInterpolateIdentities",
        "Interpolate Identities",
        "An identity between two others (t = 0: a, t = 1: b; outside [0, 1] extrapolates).",
        "interpolate_identities",
        inputs=(
            _identity("a"),
            _identity("b"),
            Port("t", "FLOAT", default=0.5, minimum=-1.0, maximum=2.0, step=0.05),
            Port("method", "COMBO", default="lerp", options=("lerp", "slerp")),
        ),
        outputs=(Port("identity", IDENTITY),),
    ),
    NodeSpec(
        "MagicNamingSampleIdentity",
        "Sample Identity",
        "A new, fictional identity drawn from the encoder's name-space statistics.",
        "sample_identity",
        inputs=(
            _encoder(),
            Port("seed", "INT", default=0, minimum=0, maximum=2**63 - 1, step=1),
            Port("temperature", "FLOAT", default=1.0, minimum=0.0, maximum=3.0, step=0.05),
        ),
        outputs=(Port("identity", IDENTITY),),
    ),
    NodeSpec(
        "MagicNamingApplyIdentity",
        "Apply Identity",
        "Puts the identity's name after the start token of the prompt's first chunk (SDXL conditioning), within a "
        "range of the sampling; optionally the mean name on the negative side.",
        "apply_identity",
        inputs=(
            _encoder(),
            _identity(),
            Port("positive", "CONDITIONING"),
            Port("negative", "CONDITIONING"),
            Port(
                "delta",
                "FLOAT",
                default=0.0,
                minimum=-10.0,
                maximum=10.0,
                step=0.05,
                tooltip="name guidance δ (eq. 4); 0: the encoder's calibrated δ",
            ),
            Port(
                "eta",
                "FLOAT",
                default=0.0,
                minimum=0.0,
                maximum=1000.0,
                step=0.1,
                tooltip="name norm η (eq. 5); 0: the encoder's mean name norm",
            ),
            Port(
                "negative_name",
                "COMBO",
                default="none",
                options=("none", "mean"),
                tooltip="'mean': the mean name on the negative side, pushing away from the average person",
            ),
            Port("start_percent", "FLOAT", default=0.0, minimum=0.0, maximum=1.0, step=0.001),
            Port("end_percent", "FLOAT", default=1.0, minimum=0.0, maximum=1.0, step=0.001),
        ),
        outputs=(Port("positive", "CONDITIONING"), Port("negative", "CONDITIONING")),
    ),
)

NODES_BY_ID = {spec.node_id: spec for spec in NODES}
