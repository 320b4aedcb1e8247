"""The insightface backend: an adapter for users who hold its models and their licence.

InsightFace's model packs (``buffalo_l`` and the others) are released for NON-COMMERCIAL RESEARCH ONLY, and
insightface downloads them at run time when they are missing. This adapter never downloads: it loads a pack already
in ``model_root/models/<model_name>/`` and raises otherwise. The code (insightface, onnxruntime) is not installed by
``magicnaming[faces]``: ``pip install insightface onnxruntime``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .config import FaceConfig
from .embedder import FaceEmbedder
from .face import Face
from .packages import require


class InsightFaceEmbedder(FaceEmbedder):
    """SCRFD detection, 5 keypoints and ArcFace (512-d) through ``insightface.app.FaceAnalysis``."""

    backend = "insightface"
    dim = 512

    def __init__(self, config: FaceConfig) -> None:
        super().__init__(config)
        pack = Path(config.model_root or "~/.insightface").expanduser() / "models" / config.model_name
        if not sorted(pack.glob("*.onnx")):
            raise FileNotFoundError(
                f"face.model_root: no insightface model pack {config.model_name!r} in {pack} (expected its .onnx "
                "files there). Its models are for non-commercial research only and are not downloaded here: place "
                "them yourself, or use backend: dlib"
            )
        install = "pip install insightface onnxruntime (or onnxruntime-gpu)"
        app_module = require("insightface.app", "the insightface face backend", install)
        self._face_align = require("insightface.utils.face_align", "the insightface face backend", install)
        self._app = app_module.FaceAnalysis(
            name=config.model_name,
            root=str(pack.parent.parent),
            providers=list(config.providers),
            allowed_modules=["detection", "recognition"],
        )
        self._app.prepare(ctx_id=0 if any("CUDA" in p for p in config.providers) else -1, det_size=(640, 640))

    @property
    def description(self) -> str:
        return f"insightface {self.config.model_name}"

    def _detect(self, pixels: np.ndarray) -> list[Face]:
        bgr = np.ascontiguousarray(pixels[:, :, ::-1])
        found = self._app.get(bgr)
        return [Face(tuple(float(v) for v in f.bbox), np.asarray(f.kps, np.float32), float(f.det_score)) for f in found]

    def _align(self, pixels: np.ndarray, face: Face, size: int) -> np.ndarray:
        # ArcFace's template is defined for multiples of 112: warp at the next one up, then resize
        side = 112 * -(-size // 112)
        chip = self._face_align.norm_crop(pixels, landmark=face.landmarks, image_size=side)
        if side == size:
            return chip
        from PIL import Image

        return np.asarray(Image.fromarray(chip).resize((size, size), Image.BICUBIC))

    def _embed(self, pixels: list[np.ndarray], faces: list[Face]) -> np.ndarray:
        # the warp ignores channel order; ArcFace's get_feat takes BGR chips (it swaps to RGB itself)
        bgr = [np.ascontiguousarray(image[:, :, ::-1]) for image in pixels]
        chips = [self._align(image, face, 112) for image, face in zip(bgr, faces, strict=True)]
        return np.asarray(self._app.models["recognition"].get_feat(chips), dtype=np.float32).reshape(len(chips), -1)
