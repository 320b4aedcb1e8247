"""MagicNaming's ComfyUI nodes: link this folder into ``ComfyUI/custom_nodes`` (see README.md).

Only re-exports: the V1 mappings (which ComfyUI reads first) and the V3 ``comfy_entrypoint`` (None on a ComfyUI
without the V3 API); the nodes are built in ``nodes.py`` from the specs in ``specs.py`` and run the functions of
``operations.py``.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, comfy_entrypoint

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "comfy_entrypoint"]
