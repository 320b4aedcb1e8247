"""Identities: averaging references, identity files, and the files they refuse."""

import re

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

import namespace as ns
from namespace.testing import TINY_WIDTH


@pytest.fixture
def references(tmp_path):
    paths = []
    for index, color in enumerate(["red", "green", "navy"]):
        path = tmp_path / f"ref{index}.jpg"
        Image.new("RGB", (48, 64), color).save(path)
        paths.append(path)
    return paths


def test_several_references_average_into_one(tiny_encoder, references):
    identity = ns.Identity.from_images(tiny_encoder, references, label="Alice", encoder_id="tiny")
    torch.testing.assert_close(identity.embedding, tiny_encoder.encode(references).mean(0), rtol=0, atol=0)
    assert (identity.label, identity.source, identity.encoder) == ("Alice", "images", "tiny")
    assert identity.metadata == {"num_references": "3"}
    assert (identity.num_tokens, identity.width) == (8, TINY_WIDTH)


def test_save_load_round_trip_is_bit_identical(tmp_path, generator):
    identity = ns.Identity(
        torch.randn(8, 2048, generator=generator), label="Bob", source="interpolation", metadata={"t": "0.25"}
    )
    loaded = ns.Identity.load(identity.save(tmp_path / "ids" / "bob.safetensors"), num_tokens=8, width=2048)
    assert torch.equal(loaded.embedding, identity.embedding)
    assert (loaded.label, loaded.source, loaded.metadata) == ("Bob", "interpolation", {"t": "0.25"})


def test_refuses_other_width_or_token_count(tmp_path, generator):
    path = ns.Identity(torch.randn(8, 1280, generator=generator)).save(tmp_path / "id.safetensors")
    with pytest.raises(ValueError, match="identity has width 1280, expected 2048"):
        ns.Identity.load(path, width=2048)
    with pytest.raises(ValueError, match="identity has 8 name tokens, expected 4"):
        ns.Identity.load(path, num_tokens=4)


def test_refuses_nan(tmp_path):
    path = tmp_path / "nan.safetensors"
    embedding = torch.zeros(8, 16)
    embedding[3, 5] = float("nan")
    save_file({"name_embedding": embedding}, path, metadata={"format": "magicnaming-identity", "format_version": "1"})
    with pytest.raises(ValueError, match="name_embedding: expected finite values, found 1 NaN/inf"):
        ns.Identity.load(path)
    with pytest.raises(ValueError, match="embedding: expected finite values"):
        ns.Identity(embedding)


HEADER = {"format": "magicnaming-identity", "format_version": "1"}


@pytest.mark.parametrize(
    "embedding, message",
    [
        (torch.ones(8, 16, dtype=torch.int32), r"name_embedding has dtype torch\.int32, expected a floating-point"),
        (torch.ones(8, 16, dtype=torch.bool), r"name_embedding has dtype torch\.bool, expected a floating-point"),
        (torch.zeros(8, 16), "name_embedding is all zeros, expected a name"),
        (torch.full((8, 16), 1e300, dtype=torch.float64), "name_embedding holds values beyond float32's range"),
    ],
    ids=["int32", "bool", "all-zero", "float64-beyond-float32"],
)
def test_refuses_names_that_cannot_be_drawn_naming_the_file(tmp_path, embedding, message):
    """An integer name used to fail with a TypeError that named no file, an all-zero one only at generation (eq. 5
    divides by its norm), a float64 one beyond float32's range as an unnamed "embedding" of infinities."""
    path = tmp_path / "bad.safetensors"
    save_file({"name_embedding": embedding}, path, metadata=HEADER)
    with pytest.raises(ValueError, match=f"^{re.escape(str(path))}: {message}"):
        ns.Identity.load(path)


def test_a_float16_name_loads_as_float32(tmp_path):
    path = tmp_path / "half.safetensors"
    save_file({"name_embedding": torch.full((8, 16), 0.5, dtype=torch.float16)}, path, metadata=HEADER)
    loaded = ns.Identity.load(path)
    assert loaded.embedding.dtype == torch.float32 and torch.equal(loaded.embedding, torch.full((8, 16), 0.5))


def test_refuses_files_that_are_not_identity_files(tmp_path):
    foreign = tmp_path / "lora.safetensors"
    save_file({"weight": torch.zeros(2, 2)}, foreign)
    with pytest.raises(ValueError, match=r"not a valid identity file: format is None, expected 'magicnaming-identity'"):
        ns.Identity.load(foreign)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x00" * 5)
    with pytest.raises(ValueError, match="is not a safetensors identity file"):
        ns.Identity.load(garbage)
    with pytest.raises(FileNotFoundError, match=r"identity file .* does not exist"):
        ns.Identity.load(tmp_path / "absent.safetensors")


def test_bad_construction():
    with pytest.raises(ValueError, match=r"embedding: expected shape \(N, D\)"):
        ns.Identity(torch.zeros(1, 8, 16))
    with pytest.raises(ValueError, match="source: expected one of images, interpolation"):
        ns.Identity(torch.zeros(8, 16), source="dream")
    with pytest.raises(ValueError, match="reserved for the identity file header"):
        ns.Identity(torch.zeros(8, 16), metadata={"width": "3"}).save("unused.safetensors")
