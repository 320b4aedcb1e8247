"""The training target equals the matching slice of the pipeline's own encode_prompt."""

import pytest
import torch

import namespace as ns
from namespace.testing import TINY_WIDTH, tiny_sd15_pipeline


def test_equals_slice_of_encode_prompt(tiny_pipe):
    names = ["Alma Quintrell", "Taylor Swift", "Dario Okonkwo"]
    embeds = ns.name_embeddings(tiny_pipe, names)
    assert embeds.shape == (3, 8, TINY_WIDTH)
    with torch.no_grad():
        prompt_embeds, *_ = tiny_pipe.encode_prompt(names, do_classifier_free_guidance=False)
    torch.testing.assert_close(embeds, prompt_embeds[:, 1:9], rtol=0, atol=0)


def test_is_clip_l_then_bigg_penultimate_layer_with_each_tokenizers_padding(tiny_pipe):
    """Rebuilds the target from the raw text encoders, independently of encode_prompt."""
    name = "Cleo Marchetti"
    parts = []
    for tokenizer, encoder in (
        (tiny_pipe.tokenizer, tiny_pipe.text_encoder),
        (tiny_pipe.tokenizer_2, tiny_pipe.text_encoder_2),
    ):
        ids = tokenizer(name, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        with torch.no_grad():
            parts.append(encoder(ids, output_hidden_states=True).hidden_states[-2][:, 1:9])
    expected = torch.cat(parts, dim=-1)  # CLIP-L (32) ‖ bigG (48)
    torch.testing.assert_close(ns.name_embeddings(tiny_pipe, name), expected, rtol=1e-6, atol=1e-6)
    # the two tokenizers pad differently ("!" = 0 for bigG); the target must see both paddings
    assert tiny_pipe.tokenizer.pad_token_id == 49407 and tiny_pipe.tokenizer_2.pad_token_id == 0


def test_batching_does_not_change_the_result(tiny_pipe):
    names = [f"Person Number{i}" for i in range(5)]
    torch.testing.assert_close(
        ns.name_embeddings(tiny_pipe, names, batch_size=2), ns.name_embeddings(tiny_pipe, names), rtol=1e-6, atol=1e-6
    )


def test_token_count_is_a_parameter(tiny_pipe):
    assert ns.name_embeddings(tiny_pipe, "Alma Quintrell", num_tokens=4).shape == (1, 4, TINY_WIDTH)


def test_long_names_warn(tiny_pipe):
    with pytest.warns(UserWarning, match="need more than 2 tokens and are cut"):
        ns.name_embeddings(tiny_pipe, ["Maria Theresia Walburga Amalia"], num_tokens=2)


def test_refuses_sd15_shaped_pipeline():
    with pytest.raises(TypeError, match=r"expected an SDXL-family diffusers pipeline .* got StableDiffusionPipeline"):
        ns.name_embeddings(tiny_sd15_pipeline(), ["Alma Quintrell"])


@pytest.mark.parametrize(
    ("names", "kwargs", "message"),
    [
        ([], {}, "names: expected at least one name"),
        (["Alma", ""], {}, "names: expected non-empty strings"),
        (["Alma", 3], {}, "names: expected non-empty strings, got 3"),
        (["Alma"], {"num_tokens": 0}, r"num_tokens: expected 1..76"),
        (["Alma"], {"num_tokens": 77}, r"num_tokens: expected 1..76"),
    ],
)
def test_bad_input(tiny_pipe, names, kwargs, message):
    with pytest.raises(ValueError, match=message):
        ns.name_embeddings(tiny_pipe, names, **kwargs)
