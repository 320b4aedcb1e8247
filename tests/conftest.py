import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a hub
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")


@pytest.fixture(scope="session")
def tiny_pipe():
    from namespace.testing import tiny_sdxl_pipeline

    return tiny_sdxl_pipeline()


@pytest.fixture
def tiny_encoder(tiny_pipe):
    from namespace.testing import tiny_name_encoder

    return tiny_name_encoder(tiny_pipe)


@pytest.fixture
def generator():
    return torch.Generator().manual_seed(0)
