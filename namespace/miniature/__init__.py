"""The miniature world's judging models: an identity judge that is not the encoder, and an attribute detector.

from namespace.miniature import train_judge, train_attribute_detector
judge = train_judge()                            # ~25 s on a CPU; judge.assign(images, judge.enroll(references))
detector = train_attribute_detector()            # detector.detect(images)["scene"] → [None, "beach", ...]
"""

from .convnet import ConvNetConfig, SmallConvNet, train_classifier
from .detectors import AttributeDetector, DetectorConfig, train_attribute_detector
from .judge import Enrolled, IdentityJudge, JudgeConfig, assignment_accuracy, train_judge

__all__ = [
    "AttributeDetector",
    "ConvNetConfig",
    "DetectorConfig",
    "Enrolled",
    "IdentityJudge",
    "JudgeConfig",
    "SmallConvNet",
    "assignment_accuracy",
    "train_attribute_detector",
    "train_classifier",
    "train_judge",
]
