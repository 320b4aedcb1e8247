"""The ComfyUI pack without ComfyUI: the conditioning logic (``namespace.inference.conditioning``) on tensors in
ComfyUI's layout, its equality with the diffusers plugin, the example workflow against the pack's node specs, and
the nodes themselves on a stand-in for ComfyUI's ``folder_paths`` (the V1 path; the V3 path runs in
tests/test_comfyui_real.py inside a real ComfyUI)."""

from __future__ import annotations

import importlib.util
import json
import sys
import types
from pathlib import Path

import pytest
import tomllib
import torch

import namespace as ns
from namespace import Identity, NameSpaceStatistics
from namespace.inference.conditioning import CHUNK, apply_identity, apply_mean_name, prepend_to_first_chunk

ROOT = Path(__file__).resolve().parents[1]
PACK = ROOT / "comfyui"
WORKFLOW = ROOT / "examples" / "comfyui" / "magicnaming_api.json"
N, D = 8, 2048

# The ComfyUI core nodes the example workflow uses: their output types, and the types of the inputs it links.
CORE_NODES = {
    "CheckpointLoaderSimple": {"outputs": ("MODEL", "CLIP", "VAE"), "inputs": {}},
    "CLIPTextEncode": {"outputs": ("CONDITIONING",), "inputs": {"clip": "CLIP"}},
    "LoadImage": {"outputs": ("IMAGE", "MASK"), "inputs": {}},
    "EmptyLatentImage": {"outputs": ("LATENT",), "inputs": {}},
    "KSampler": {
        "outputs": ("LATENT",),
        "inputs": {"model": "MODEL", "positive": "CONDITIONING", "negative": "CONDITIONING", "latent_image": "LATENT"},
    },
    "VAEDecode": {"outputs": ("IMAGE",), "inputs": {"samples": "LATENT", "vae": "VAE"}},
    "SaveImage": {"outputs": (), "inputs": {"images": "IMAGE"}},
}


def load_file_module(name: str, path: Path) -> types.ModuleType:
    """A module of the pack, loaded by file (the pack's __init__ imports ComfyUI)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


specs = load_file_module("magicnaming_comfyui_specs", PACK / "specs.py")


@pytest.fixture(scope="module")
def statistics() -> NameSpaceStatistics:
    names = torch.randn(12, N, D, generator=torch.Generator().manual_seed(0))
    return NameSpaceStatistics.fit(names, rank=4)


@pytest.fixture(scope="module")
def identity() -> Identity:
    return Identity(torch.randn(N, D, generator=torch.Generator().manual_seed(1)), "alice")


def comfy_conditioning(chunks: int = 2, batch: int = 1, seed: int = 2) -> list:
    """ComfyUI's SDXL layout: [[cond (B, 77·k, 2048), {"pooled_output": (B, 1280)}]]."""
    generator = torch.Generator().manual_seed(seed)
    cond = torch.randn(batch, CHUNK * chunks, D, generator=generator)
    return [[cond, {"pooled_output": torch.randn(batch, 1280, generator=generator)}]]


# -- the conditioning logic -------------------------------------------------------------------------------------------


def test_the_name_follows_the_start_token_of_the_first_chunk_only(statistics, identity):
    conditioning = comfy_conditioning(chunks=2)
    cond, options = conditioning[0]
    (named, named_options), *rest = apply_identity(conditioning, identity, statistics, delta=1.0)
    name = ns.normalize(identity.embedding, statistics.norm)
    assert not rest and named.shape == (1, 154, D)
    assert torch.equal(named[:, 0], cond[:, 0])  # the start token stays
    assert torch.equal(named[0, 1 : 1 + N], name)
    assert torch.equal(named[:, 1 + N : CHUNK], cond[:, 1 : CHUNK - N])  # the chunk shifted; its last N fall off
    assert torch.equal(named[:, CHUNK:], cond[:, CHUNK:])  # the second chunk, start token included, untouched
    assert named_options is not options and named_options["pooled_output"] is options["pooled_output"]
    assert torch.equal(conditioning[0][0], cond)  # the input is not modified


def test_delta_and_eta_make_the_name_as_the_plugin_does(statistics, identity):
    (named, _), *_ = apply_identity(comfy_conditioning(1, batch=2), identity, statistics, delta=1.7, eta=42.0)
    expected = ns.normalize(ns.guide(identity.embedding, statistics.mean, 1.7), 42.0)
    assert torch.equal(named[:, 1 : 1 + N], expected.expand(2, -1, -1))
    assert float(torch.linalg.vector_norm(named[0, 1 : 1 + N])) == pytest.approx(42.0, rel=1e-5)


def test_the_negative_side_gets_the_mean_name(statistics):
    conditioning = comfy_conditioning(2)
    (negative, _), *rest = apply_mean_name(conditioning, statistics, eta=10.0)
    assert not rest
    assert torch.equal(negative[0, 1 : 1 + N], ns.normalize(statistics.mean, 10.0))
    assert torch.equal(negative[:, CHUNK:], conditioning[0][0][:, CHUNK:])


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        ((0.0, 1.0), [("named", None, None)]),
        ((0.0, 0.6), [("named", 0.0, 0.6), ("plain", 0.6, 1.0)]),
        ((0.3, 1.0), [("plain", 0.0, 0.3), ("named", 0.3, 1.0)]),
        ((0.2, 0.7), [("plain", 0.0, 0.2), ("named", 0.2, 0.7), ("plain", 0.7, 1.0)]),
    ],
)
def test_a_step_range_gives_named_entries_inside_and_plain_ones_outside(statistics, identity, window, expected):
    conditioning = comfy_conditioning(1)
    plain = conditioning[0][0]
    entries = apply_identity(conditioning, identity, statistics, start_percent=window[0], end_percent=window[1])
    found = [
        ("plain" if torch.equal(cond, plain) else "named", options.get("start_percent"), options.get("end_percent"))
        for cond, options in entries
    ]
    assert found == expected  # ComfyUI's percents: 0 is the first step (ConditioningSetTimestepRange's keys)
    assert all("pooled_output" in options for _, options in entries)


def test_a_step_range_keeps_within_the_range_an_entry_had(statistics, identity):
    cond, options = comfy_conditioning(1)[0]
    conditioning = [[cond, {**options, "start_percent": 0.0, "end_percent": 0.5}]]
    entries = apply_identity(conditioning, identity, statistics, start_percent=0.25, end_percent=0.75)
    ranges = [(o["start_percent"], o["end_percent"], torch.equal(c, cond)) for c, o in entries]
    assert ranges == [(0.0, 0.25, True), (0.25, 0.5, False)]


@pytest.mark.parametrize(
    ("width", "hint"), [(768, "SD 1.5"), (1280, "refiner"), (1024, "SD 2.x")], ids=["sd15", "refiner", "sd2"]
)
def test_conditioning_of_another_width_is_refused_naming_the_node_input(statistics, identity, width, hint):
    conditioning = [[torch.zeros(1, 77, width), {"pooled_output": torch.zeros(1, 1280)}]]
    message = f"Apply Identity.conditioning: expected SDXL conditioning of width 2048 .*got {width} .*{hint}"
    with pytest.raises(ValueError, match=message):
        apply_identity(conditioning, identity, statistics)
    with pytest.raises(ValueError, match=f"Apply Identity.negative: .*got {width}"):
        apply_mean_name(conditioning, statistics)


def test_bad_identities_ranges_and_entries_are_refused(statistics, identity):
    narrow = Identity(torch.randn(N, 1280), "refiner-person")
    with pytest.raises(
        ValueError, match=r"Apply Identity.identity: 'refiner-person' has shape .* \(8, 1280\).*\(8, 2048\)"
    ):
        apply_identity(comfy_conditioning(1), narrow, statistics)
    with pytest.raises(
        ValueError, match=r"Apply Identity\.start_percent, Apply Identity\.end_percent: .*got \(0\.8, 0\.2\)"
    ):
        apply_identity(comfy_conditioning(1), identity, statistics, start_percent=0.8, end_percent=0.2)
    with pytest.raises(ValueError, match=r"Apply Identity.conditioning\[0\]: expected a \[tensor, dict\]"):
        apply_identity([torch.zeros(1, 77, D)], identity, statistics)
    with pytest.raises(ValueError, match=r"Apply Identity\.conditioning: expected ComfyUI conditioning"):
        apply_identity([], identity, statistics)
    with pytest.raises(ValueError, match=r"Apply Identity\.eta: expected a finite name norm"):
        apply_identity(comfy_conditioning(1), identity, statistics, eta=-1.0)


def test_prepend_to_first_chunk_is_prepend_on_a_single_chunk():
    cond, name = torch.randn(2, CHUNK, 16), torch.randn(3, 16)
    assert torch.equal(prepend_to_first_chunk(cond, name), ns.prepend(cond, name))


# -- equality with the diffusers plugin -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    from namespace.testing import tiny_name_encoder, tiny_sdxl_pipeline

    pipe = tiny_sdxl_pipeline()
    return pipe, tiny_name_encoder(pipe)


def encode(pipe, prompt: str, negative: str = "") -> tuple[torch.Tensor, ...]:
    with torch.no_grad():
        return pipe.encode_prompt(
            prompt, num_images_per_prompt=1, do_classifier_free_guidance=True, negative_prompt=negative
        )


@pytest.mark.parametrize("delta", [None, 1.6])
def test_apply_identity_equals_the_plugins_prompt_embeds(tiny, delta):
    """The plugin prepends with the prompt's token count, which only decides whether it warns about a cut prompt;
    for a prompt that fits, both paths are the same computation on the same tensors: equal, bit for bit."""
    from namespace.inference import MagicNaming

    pipe, encoder = tiny
    identity = Identity.sampled(encoder.statistics, 1, seed=3)[0]
    prompt = "a photo of a person riding a horse on the beach"
    naming = MagicNaming(pipe, encoder, negative_name="mean")
    expected = naming.prompt_embeds(prompt, identity, negative_prompt="blurry", delta=delta, eta=None)
    embeds, negative, pooled, negative_pooled = encode(pipe, prompt, "blurry")  # (1, 77, 80) each
    positive = apply_identity([[embeds, {"pooled_output": pooled}]], identity, encoder.statistics, delta=delta)
    negative = apply_mean_name([[negative, {"pooled_output": negative_pooled}]], encoder.statistics)
    assert torch.equal(positive[0][0], expected["prompt_embeds"])
    assert torch.equal(negative[0][0], expected["negative_prompt_embeds"])
    assert torch.equal(positive[0][1]["pooled_output"], expected["pooled_prompt_embeds"])


def test_a_long_prompt_in_comfyui_layout_keeps_its_second_chunk(tiny):
    """ComfyUI encodes a long prompt as 77-token chunks; diffusers cuts it at 77. The first chunk is named as the
    plugin names a prompt, the second is left alone (it has its own start token: no name follows it)."""
    from namespace.inference import MagicNaming

    pipe, encoder = tiny
    identity = Identity.sampled(encoder.statistics, 1, seed=4)[0]
    first, second = "a person in a red coat", "walking in the snow at night"
    chunks = torch.cat([encode(pipe, first)[0], encode(pipe, second)[0]], dim=1)  # (1, 154, 80)
    (named, _), *_ = apply_identity([[chunks, {}]], identity, encoder.statistics)
    expected = MagicNaming(pipe, encoder).prompt_embeds(first, identity)["prompt_embeds"]
    assert torch.equal(named[:, :CHUNK], expected)
    assert torch.equal(named[:, CHUNK:], chunks[:, CHUNK:])


# -- the example workflow against the pack's specs --------------------------------------------------------------------


def test_the_example_workflow_names_only_core_nodes_and_the_packs_nodes_with_their_inputs():
    workflow = json.loads(WORKFLOW.read_text())
    outputs = {}
    for node_id, node in workflow.items():
        kind = node["class_type"]
        assert kind in CORE_NODES or kind in specs.NODES_BY_ID, f"node {node_id}: unknown class_type {kind}"
        pack = specs.NODES_BY_ID.get(kind)
        outputs[node_id] = tuple(p.type for p in pack.outputs) if pack else CORE_NODES[kind]["outputs"]
    for node_id, node in workflow.items():
        pack = specs.NODES_BY_ID.get(node["class_type"])
        expected = pack.input_types if pack else CORE_NODES[node["class_type"]]["inputs"]
        for name, value in node["inputs"].items():
            if isinstance(value, list):  # a link: [source node, output index]
                source, index = value
                assert name in expected, f"node {node_id}: input {name} is not linkable"
                assert outputs[source][index] == expected[name], f"node {node_id}.{name}: {outputs[source][index]}"
            elif pack is not None:
                check_widget_value(pack, node_id, name, value)
        if pack is not None:
            required = {p.name for p in pack.inputs if not p.optional}
            assert required <= set(node["inputs"]), f"node {node_id}: missing {required - set(node['inputs'])}"
    used = {node["class_type"] for node in workflow.values()}
    assert {"MagicNamingApplyIdentity", "MagicNamingLoadEncoder", "KSampler", "SaveImage"} <= used


def check_widget_value(pack, node_id: str, name: str, value: object) -> None:
    ports = {p.name: p for p in pack.inputs}
    assert name in ports, f"node {node_id}: {pack.node_id} has no input {name}"
    port = ports[name]
    allowed = {"FLOAT": (int, float), "INT": (int,), "STRING": (str,), "COMBO": (str,)}
    assert port.type in allowed and isinstance(value, allowed[port.type]), f"node {node_id}.{name}: {value!r}"
    if port.options:
        assert value in port.options, f"node {node_id}.{name}: {value!r} not in {port.options}"
    if port.minimum is not None:
        assert port.minimum <= value <= port.maximum, f"node {node_id}.{name}: {value!r} out of range"


def test_the_pack_is_not_a_package_of_magicnaming():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert not any(p.split(".")[0] == "comfyui" for p in project["tool"]["setuptools"]["packages"])
    pack = tomllib.loads((PACK / "pyproject.toml").read_text())
    assert pack["project"]["name"] == "comfyui-magicnaming"
    assert any(d.startswith("magicnaming") for d in pack["project"]["dependencies"])
    assert {"PublisherId", "DisplayName", "Icon"} <= set(pack["tool"]["comfy"])


def test_only_nodes_py_imports_comfyui():
    for path in PACK.glob("*.py"):
        text = path.read_text()
        imports = any(f"import {m}" in text or f"from {m}" in text for m in ("comfy", "folder_paths", "comfy_api"))
        assert imports == (path.name == "nodes.py"), path.name


# -- the nodes on a stand-in for ComfyUI (the V1 path) ----------------------------------------------------------------


@pytest.fixture
def pack(tmp_path, monkeypatch):
    """The pack imported as ComfyUI imports it, with stand-ins for folder_paths and comfy.model_management and no
    comfy_api (an older ComfyUI: the V1 nodes)."""
    folder_paths = types.SimpleNamespace(
        models_dir=str(tmp_path / "models"),
        folder_names_and_paths={},
        get_output_directory=lambda: str(tmp_path / "output"),
    )
    folder_paths.get_folder_paths = lambda name: list(folder_paths.folder_names_and_paths[name][0])
    management = types.SimpleNamespace(get_torch_device=lambda: torch.device("cpu"))
    monkeypatch.setitem(sys.modules, "folder_paths", folder_paths)
    monkeypatch.setitem(sys.modules, "comfy", types.SimpleNamespace(model_management=management))
    monkeypatch.setitem(sys.modules, "comfy.model_management", management)
    monkeypatch.setitem(sys.modules, "comfy_api", None)  # import fails: no V3 API
    spec = importlib.util.spec_from_file_location(
        "magicnaming_pack", PACK / "__init__.py", submodule_search_locations=[str(PACK)]
    )
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "magicnaming_pack", module)
    spec.loader.exec_module(module)
    return module, tmp_path


def test_the_v1_nodes_load_sample_apply_save_and_load_again(pack, tiny):
    module, tmp_path = pack
    pipe, encoder = tiny
    encoder.save_pretrained(tmp_path / "models" / "magicnaming" / "tiny")
    nodes = {name: cls() for name, cls in module.NODE_CLASS_MAPPINGS.items()}
    assert set(nodes) == set(specs.NODES_BY_ID) and module.comfy_entrypoint is None
    assert module.NODE_DISPLAY_NAME_MAPPINGS["MagicNamingApplyIdentity"] == "Apply Identity"
    load_types = module.NODE_CLASS_MAPPINGS["MagicNamingLoadEncoder"].INPUT_TYPES()
    assert load_types["required"]["encoder_name"][0] == ["tiny"]  # the registered models/magicnaming folder

    (loaded,) = nodes["MagicNamingLoadEncoder"].execute(encoder_name="tiny")
    (person,) = nodes["MagicNamingSampleIdentity"].execute(name_encoder=loaded, seed=5, temperature=1.0)
    nodes["MagicNamingSaveIdentity"].execute(identity=person, filename_prefix="magicnaming/person")
    nodes["MagicNamingSaveIdentity"].execute(identity=person, filename_prefix="magicnaming/person")
    saved = sorted(p.name for p in (tmp_path / "output" / "magicnaming").iterdir())
    assert saved == ["person_00001.safetensors", "person_00002.safetensors"]  # numbered, never overwritten
    choices = module.NODE_CLASS_MAPPINGS["MagicNamingLoadIdentity"].INPUT_TYPES()["required"]["identity_file"][0]
    assert choices == saved
    (again,) = nodes["MagicNamingLoadIdentity"].execute(identity_file="person_00002.safetensors")
    assert torch.equal(again.embedding, person.embedding)

    embeds, negative, pooled, negative_pooled = encode(pipe, "a person at the sea", "blurry")
    positive, negative_out = nodes["MagicNamingApplyIdentity"].execute(
        name_encoder=loaded,
        identity=again,
        positive=[[embeds, {"pooled_output": pooled}]],
        negative=[[negative, {"pooled_output": negative_pooled}]],
        delta=0.0,
        eta=0.0,
        negative_name="none",
        start_percent=0.0,
        end_percent=1.0,
    )
    expected = apply_identity([[embeds, {}]], person, encoder.statistics)[0][0]
    assert torch.equal(positive[0][0], expected) and negative_out[0][0] is negative
    with pytest.raises(ValueError, match=r"Save Identity\.filename_prefix: .* outside the output folder"):
        nodes["MagicNamingSaveIdentity"].execute(identity=person, filename_prefix="../escape")


def test_identity_from_images_takes_comfyuis_image_batch(pack, tiny):
    module, _ = pack
    _, encoder = tiny
    node = module.NODE_CLASS_MAPPINGS["MagicNamingIdentityFromImages"]()
    images = torch.rand(2, 64, 48, 3, generator=torch.Generator().manual_seed(6))  # (B, H, W, 3) in [0, 1]
    (person,) = node.execute(name_encoder=encoder, images=images, label="bob", crop="none")
    expected = Identity.from_images(encoder, images.permute(0, 3, 1, 2), label="bob", reference_crop="none")
    assert person.label == "bob" and torch.allclose(person.embedding, expected.embedding)
    with pytest.raises(ValueError, match=r"Identity from Images.images: expected an IMAGE batch \(B, H, W, 3\)"):
        node.execute(name_encoder=encoder, images=images.permute(0, 3, 1, 2), label="bob", crop="none")


def test_mix_and_interpolate_nodes_are_the_packages_functions(pack, identity):
    module, _ = pack
    other = Identity(torch.randn(N, D, generator=torch.Generator().manual_seed(7)), "bob")
    mix = module.NODE_CLASS_MAPPINGS["MagicNamingMixIdentities"]()
    (mixed,) = mix.execute(identity_1=identity, identity_2=other, weight_1=3.0, weight_2=1.0)
    assert torch.equal(mixed.embedding, ns.mix([identity.embedding, other.embedding], [3.0, 1.0]))
    assert mixed.metadata["parts"] == "alice,bob"
    interpolate = module.NODE_CLASS_MAPPINGS["MagicNamingInterpolateIdentities"]()
    (between,) = interpolate.execute(a=identity, b=other, t=0.25, method="slerp")
    expected = ns.interpolate(identity.embedding, other.embedding, 0.25, method="slerp")
    assert torch.equal(between.embedding, expected) and between.source == "interpolation"
