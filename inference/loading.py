"""Loading the plugin for a command: the name encoder and the pipeline the user named, each a progress step.

What a name means and how it loads (``tiny``, ``miniature``, a world or diffusers folder, a Hub id, a single
``.safetensors`` file with its ``--pipeline_config``; dtype and device) is ``namespace.model_names``' to say; the
libraries' own progress bars are turned off there, since the commands print one line per step themselves.
"""

from __future__ import annotations

from namespace.model_names import (
    TINY,
    Task,
    load_encoder,
    load_pipeline,
    parse_encoder,
    parse_pipeline,
    parse_pipeline_config,
)
from namespace.progress import Steps

from .plugin import MagicNaming


def load_naming(
    encoder: str,
    pipeline: str,
    steps: Steps,
    task: Task = "text2img",
    dtype: str = "auto",
    device: str = "auto",
    pipeline_config: str | None = None,
) -> MagicNaming:
    """Loads the encoder, then the pipeline, each as a step of ``steps``, into the plugin; the tiny encoder comes
    after the pipeline, since it takes its width and name-space statistics from it. ``pipeline_config``: the configs
    of a single-file ``pipeline`` (``namespace.model_names.parse_pipeline_config``)."""
    encoder_name, pipeline_name = parse_encoder(encoder), parse_pipeline(pipeline)
    pipeline_config = parse_pipeline_config(pipeline_config, pipeline_name)

    def load_model(pipe=None):
        steps.start(f"loading the name encoder {encoder}")
        return load_encoder(encoder_name, device, pipe)

    def load_pipe():
        steps.start(f"loading the pipeline {pipeline}")
        return load_pipeline(pipeline_name, task, dtype, device, config=pipeline_config)

    if encoder_name.kind == TINY:
        pipe = load_pipe()
        return MagicNaming(pipe, load_model(pipe))
    model = load_model()
    return MagicNaming(load_pipe(), model)
