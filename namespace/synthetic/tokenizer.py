"""CLIP's real BPE tokenizer, built offline from the vocabulary open_clip ships (``bpe_simple_vocab_16e6.txt.gz``).

The vocabulary and merges are exactly those of ``openai/clip-vit-large-patch14``'s tokenizer, so tiny test
pipelines see the token ids SDXL sees: "a photo of a cat" → 49406, 320, 1125, 539, 320, 2368, 49407.
"""

from __future__ import annotations

import functools
import gzip
import json
import tempfile
from pathlib import Path

CLIP_VOCAB_SIZE = 49408
START_TOKEN, END_TOKEN = "<|startoftext|>", "<|endoftext|>"


@functools.cache
def _vocabulary_folder() -> Path:
    """Writes vocab.json and merges.txt once per process, as CLIP's tokenizer files on the Hub hold them."""
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    with gzip.open(default_bpe()) as handle:
        lines = handle.read().decode("utf-8").split("\n")
    merges = lines[1 : 1 + CLIP_VOCAB_SIZE - 2 * 256 - 2]  # 48,894 merges; the first line is a header
    byte_symbols = list(bytes_to_unicode().values())
    vocab = [*byte_symbols, *(symbol + "</w>" for symbol in byte_symbols)]
    vocab += ["".join(merge.split()) for merge in merges]
    vocab += [START_TOKEN, END_TOKEN]
    assert len(vocab) == CLIP_VOCAB_SIZE, len(vocab)
    folder = Path(tempfile.mkdtemp(prefix="magicnaming-clip-tokenizer-"))
    (folder / "vocab.json").write_text(json.dumps({token: index for index, token in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return folder


def clip_tokenizer(pad_token: str = END_TOKEN, model_max_length: int = 77):
    """A ``transformers.CLIPTokenizer`` with CLIP's vocabulary.

    Args:
        pad_token: SDXL's first tokenizer pads with the end token; its second (OpenCLIP bigG) pads with ``"!"``.
        model_max_length: sequence length (77 in every SDXL pipeline).
    """
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(
        str(_vocabulary_folder()), pad_token=pad_token, model_max_length=model_max_length
    )
