"""``magicnaming app``: the web app around the plugin (Gradio, ``magicnaming[app]``).

state (the plugin and its defaults) · library (saved identities with thumbnails) · drawing (one image, progress,
errors in the page) · a module per tab · layout (the Blocks) · commands (the CLI). Importing this package does not
import Gradio; ``build_app`` does.
"""

from .library import IdentityLibrary
from .state import AppState, load_state, resolve_models

__all__ = ["AppState", "IdentityLibrary", "load_state", "resolve_models"]
