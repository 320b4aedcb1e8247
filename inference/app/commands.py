"""``magicnaming app``: the web app (Gradio) around the plugin, served on this machine."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path

from namespace.command_line import run_command
from namespace.files import cache_dir

# events served at once; they take turns on the one pipeline an image (a story panel) at a time
CONCURRENT_EVENTS = 4
# runs `magicnaming demo ARGS`: handed down by the `magicnaming` command (a stage never names the demo, a floor above)
_RUN_DEMO: ContextVar[Callable[[list[str]], object] | None] = ContextVar("run_demo", default=None)


def app(
    encoder: str | None = None,
    pipeline: str = "miniature",
    library: Path | None = None,
    outputs: Path | None = None,
    host: str = "127.0.0.1",
    port: int = 7860,
    auth: str | None = None,
    password_file: Path | None = None,
    open_without_auth: bool = False,
    max_upload_mb: float = 20.0,
    dtype: str = "auto",
    device: str = "auto",
    build_missing: bool = True,
    pipeline_config: str | None = None,
) -> None:
    """Serves the MagicNaming web app: identities from photos, generation, fictional people, stories.

    Args:
        encoder: name-encoder folder or Hub id (default with --pipeline miniature: demo-output/encoder, the
            demo's; tiny: the tiny test encoder).
        pipeline: miniature (the miniature world cached by magicnaming demo), tiny (the offline tiny test models,
            random weights), an SDXL-family pipeline folder or Hub id, or a single-file SDXL checkpoint
            (*.safetensors).
        library: the folder of saved identities (default: $MAGICNAMING_CACHE/app/identities or
            ~/.cache/magicnaming/app/identities).
        outputs: where every image, story and its settings are written (default: the cache's app/outputs).
        host: the address to serve on (127.0.0.1: this machine only; 0.0.0.0 opens it to the network, which needs
            --auth or --open_without_auth true).
        port: the port to serve on.
        auth: a user name: visitors log in with it and the password from $MAGICNAMING_APP_PASSWORD or
            --password_file (never on the command line). Required off this machine.
        password_file: a file whose first line is the --auth password (instead of $MAGICNAMING_APP_PASSWORD).
        open_without_auth: serve off this machine without a login: anyone who reaches it can download every
            identity and image and make identities (a warning is printed).
        max_upload_mb: the largest file a visitor may upload, in megabytes.
        dtype: auto (fp16 on GPU, fp32 on CPU), fp32, fp16 or bf16.
        device: auto, cpu, cuda, cuda:1, ...
        build_missing: with --pipeline miniature and no --encoder, build the miniature world and the demo's encoder
            when they are missing, by running the demo (``configs/demo.yaml`` of a checkout, in the current
            folder; about 10 minutes on 2 CPU cores, its steps printed as it goes); false: say what to run instead.
        pipeline_config: for a single-file --pipeline: a diffusers pipeline folder (offline) or Hub id whose configs
            describe it; default: the one diffusers infers for the checkpoint, which needs that repository's configs
            in the local Hub cache when offline.
    """
    from namespace.model_names import MINIATURE, TINY, parse_pipeline, parse_pipeline_config

    from ..inputs import InputCheck, dtype_and_device, encoder_config
    from .serving import CLEAN_AGE, CLEAN_EVERY, check_access, private_gradio_setup, warn_if_open
    from .state import DEMO_COMMAND, DEMO_CONFIG, load_state, resolve_models

    if not 1 <= port <= 65535:
        raise ValueError(f"--port: expected 1 to 65535, got {port}")
    if not 0 < max_upload_mb < float("inf"):
        raise ValueError(f"--max_upload_mb: expected a positive number of megabytes, got {max_upload_mb}")
    login = check_access(host, auth, password_file, open_without_auth)
    with InputCheck() as check:  # every problem of the names before any model loads or the demo runs
        check(parse_pipeline_config, pipeline_config, check(parse_pipeline, pipeline))
        if encoder not in (None, TINY):  # None: the demo's encoder, checked by resolve_models
            check(encoder_config, encoder)
        check(dtype_and_device, dtype, device)
    try:
        resolved = resolve_models(encoder, pipeline)
    except FileNotFoundError:
        run_demo = _RUN_DEMO.get()
        wanted = build_missing and pipeline == MINIATURE and encoder is None and Path(DEMO_CONFIG).is_file()
        if not (wanted and run_demo):
            raise
        print(f"the miniature world or the demo's encoder is missing: building them with `{DEMO_COMMAND}` "
              "(about 10 minutes on 2 CPU cores; the world is cached for later runs)", flush=True)  # fmt: skip
        run_demo(DEMO_COMMAND.split()[2:])  # the arguments after `magicnaming demo`
        resolved = resolve_models(encoder, pipeline)
    encoder, pipeline, defaults = resolved
    private_gradio_setup()  # before Gradio is imported
    try:
        from .layout import build_app
    except ImportError as error:
        raise RuntimeError(f"magicnaming app needs Gradio: pip install 'magicnaming[app]' ({error})") from error
    library = Path(library) if library is not None else cache_dir("app") / "identities"
    outputs = Path(outputs) if outputs is not None else cache_dir("app") / "outputs"
    state = load_state(encoder, pipeline, defaults, library, outputs, dtype, device, pipeline_config)
    print(f"identity library: {library}\noutputs: {outputs}", flush=True)
    warn_if_open(host, login)
    blocks = build_app(state, delete_cache=(CLEAN_EVERY, CLEAN_AGE))
    blocks.queue(default_concurrency_limit=CONCURRENT_EVENTS).launch(
        server_name=host,
        server_port=port,
        auth=login,
        auth_message="MagicNaming: log in with the user of --auth and its password.",
        allowed_paths=[str(library), str(outputs)],
        max_file_size=int(max_upload_mb * 2**20),
        share=False,
        quiet=False,
    )


def main(argv: list[str], prog: str = "magicnaming app", run_demo: Callable[[list[str]], object] | None = None) -> int:
    """``run_demo``: runs ``magicnaming demo ARGS`` (the ``magicnaming`` command hands it down); None: a missing
    miniature world or demo encoder is reported with the command that builds them."""
    token = _RUN_DEMO.set(run_demo)
    try:
        run_command(app, argv, prog)
    finally:
        _RUN_DEMO.reset(token)
    return 0
