"""The evaluation's metrics on hand-computed inputs, and the scorers that feed them on tiny models and real photos.

The judge and detector here are trained small in the test (about 7 and 14 s on one CPU thread, as in
tests/test_miniature_judges.py), on people outside every sample.
"""

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from PIL import Image

from namespace.inference.evaluation.identity_scorers import FaceIdentityScorer, JudgeIdentityScorer
from namespace.inference.evaluation.metrics import (
    attribute_ti,
    clip_ti,
    face_detection_rate,
    frechet_distance,
    identity_consistency,
    kernel_distance,
    reference_embedding,
    reference_similarity,
)
from namespace.inference.evaluation.scorers import (
    AttributeScorer,
    ClipImageFeatures,
    ClipTextImageScorer,
    asked_attributes,
    attributes_followed,
    distance_features,
    image_distance_extractor,
)
from namespace.miniature import AttributeDetector, DetectorConfig
from namespace.miniature.captions import PERSON, caption
from namespace.synthetic.faces import synthetic_face

NAN = [math.nan, math.nan]
FRESH_PEOPLE = 26_000  # outside the judge's (20000+, 21000+) and the detector's (30000+, 31000+) people
SIZE = 16


# -- metrics on hand-computed inputs -------------------------------------------------------------------------------


def test_clip_ti_is_100_times_the_mean_cosine_of_each_image_with_its_own_prompt():
    images = np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]])
    texts = np.array([[1.0, 1.0], [0.0, 1.0], [-4.0, 3.0]])  # cosines 1/√2, 1, 0
    assert clip_ti(images, texts) == pytest.approx(100 * (1 / math.sqrt(2) + 1 + 0) / 3)
    assert clip_ti(torch.tensor(images[:2]), torch.tensor(texts[:2])) == pytest.approx(50 * (1 / math.sqrt(2) + 1))
    with pytest.raises(ValueError, match=r"text_features: expected shape \(3, 2\).*got \(2, 2\)"):
        clip_ti(images, texts[:2])


def test_attribute_ti_counts_only_images_whose_prompt_asks_for_something():
    assert attribute_ti([True, False, None, True]) == pytest.approx(200 / 3)
    assert math.isnan(attribute_ti([None, None]))


def test_face_detection_rate_is_the_share_of_rows_without_nan():
    assert face_detection_rate(np.array([[1.0, 0.0], NAN, [0.0, 1.0], NAN])) == 0.5
    assert face_detection_rate(np.array([NAN])) == 0.0


def test_reference_similarity_leaves_out_images_without_a_face():
    generated = np.array([[3.0, 4.0], NAN, [1.0, 0.0]])
    # a (d,) reference: cosines 0.6 and 1 (the NaN row left out)
    assert reference_similarity(generated, np.array([2.0, 0.0])) == pytest.approx(0.8)
    # (m, d) reference photos: their mean with a face, normalised, is (1, 1)/√2 → cosines 1.4/√2 and 1/√2
    photos = np.array([[1.0, 0.0], [0.0, 1.0], NAN])
    np.testing.assert_allclose(reference_embedding(photos), [2**-0.5, 2**-0.5])
    assert reference_similarity(generated, photos) == pytest.approx((1.4 + 1) / 2 / math.sqrt(2))
    assert math.isnan(reference_similarity(np.array([NAN, NAN]), photos))
    with pytest.raises(ValueError, match="reference: expected at least one reference photo with a face, got none of 1"):
        reference_similarity(generated, np.array([NAN]))
    with pytest.raises(ValueError, match=r"reference: expected width 2.*got 3"):
        reference_similarity(generated, np.array([1.0, 0.0, 0.0]))


def test_identity_consistency_is_the_mean_pairwise_cosine_among_faces():
    rows = np.array([[1.0, 0.0], [0.0, 1.0], NAN, [2.0, 2.0]])  # pairs: 0, 1/√2, 1/√2
    assert identity_consistency(rows) == pytest.approx(2 / 3 / math.sqrt(2))
    assert math.isnan(identity_consistency(np.array([[1.0, 0.0], NAN])))


def test_fid_of_known_one_dimensional_sets():
    # means 1 and 3, unbiased variances 2 and 8: (1 − 3)² + 2 + 8 − 2·√(2·8) = 6
    assert frechet_distance([[0.0], [2.0]], [[1.0], [5.0]]) == pytest.approx(6.0)


def test_fid_of_a_set_against_itself_is_zero():
    features = np.random.default_rng(0).normal(size=(200, 8)) @ np.diag([1, 2, 3, 4, 5, 6, 7, 8.0])
    assert frechet_distance(features, features) < 1e-3 * np.trace(np.cov(features.T))


def test_fid_of_two_gaussian_samples_is_the_closed_form():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(300, 2)) @ np.array([[2.0, 0.5], [0.0, 1.0]])
    b = rng.normal(size=(300, 2)) @ np.array([[1.0, -0.3], [0.2, 0.7]]) + [1.5, -0.5]
    mu_a, mu_b, cov_a, cov_b = a.mean(0), b.mean(0), np.cov(a.T), np.cov(b.T)
    expected = np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2 * scipy.linalg.sqrtm(cov_a @ cov_b).real)
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)


def test_kid_of_known_one_dimensional_sets():
    # k(x, y) = (x·y + 1)³ (d = 1); X = {0, 1}, Y = {1, 2}: within X k(0, 1) = 1, within Y k(1, 2) = 27, across
    # 1 + 1 + 8 + 27 = 37 → 1 + 27 − 2 · 37 / 4 = 9.5; subsets of both whole sets all agree, so the std is 0
    assert kernel_distance([[0.0], [1.0]], [[1.0], [2.0]], subset_size=2, subsets=3) == (pytest.approx(9.5), 0.0)


def test_kid_is_unbiased_on_small_sets_where_fid_is_not():
    rng = np.random.default_rng(2)
    draws = 300
    same = [(rng.normal(size=(10, 2)), rng.normal(size=(10, 2))) for _ in range(draws)]
    kid = np.array([kernel_distance(a, b, subset_size=10, subsets=1)[0] for a, b in same])
    fid = np.array([frechet_distance(a, b) for a, b in same])
    shifted = np.array([kernel_distance(a, b + 1.0, subset_size=10, subsets=1)[0] for a, b in same])
    error = kid.std() / math.sqrt(draws)
    assert abs(kid.mean()) < 3 * error  # expected 0 for two samples of one distribution
    assert fid.mean() > 10 * fid.std() / math.sqrt(draws) and fid.mean() > 0.3  # biased upwards by ~d(d+1)/n
    assert shifted.mean() > kid.mean() + 10 * error


def test_kid_subsets_are_seeded_and_leave_the_callers_random_state_alone():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(30, 3)), rng.normal(size=(30, 3)) + 0.5
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = kernel_distance(a, b, subset_size=10, subsets=20, seed=5)
    assert torch.rand(1) == before  # the caller's generator did not move
    assert kernel_distance(a, b, subset_size=10, subsets=20, seed=5) == first
    assert kernel_distance(a, b, subset_size=10, subsets=20, seed=6) != first
    assert first[1] > 0


def test_distance_errors_name_the_argument():
    with pytest.raises(ValueError, match="fake_features: expected at least 2 rows, got 1"):
        frechet_distance(np.zeros((3, 2)), np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"fake_features: expected width 2 \(real_features'\), got 3"):
        frechet_distance(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="real_features: expected finite values"):
        frechet_distance(np.array([[0.0, 1.0], NAN]), np.zeros((3, 2)))
    with pytest.raises(ValueError, match=r"subset_size, subsets: expected 2 ≤ subset_size ≤ 3.*got 4, 100"):
        kernel_distance(np.zeros((5, 2)), np.zeros((3, 2)), subset_size=4)


# -- scorers -------------------------------------------------------------------------------------------------------


def faces(count: int = 4, **attributes) -> list[Image.Image]:
    return [synthetic_face(FRESH_PEOPLE + p, v, 32, **attributes) for p in range(count) for v in range(2)]


def test_clip_scorer_embeds_prompts_with_clips_tokenizer_and_scores_each_image_with_its_prompt():
    scorer = ClipTextImageScorer("MagicNaming-Tiny-TI", pretrained=None, batch_size=2)
    assert scorer.tokenizer(["a photo of a cat"])[0, :7].tolist() == [49406, 320, 1125, 539, 320, 2368, 49407]
    images = faces(2)[:3]
    prompts = ["a photo of a person on a beach", "a person smiling", "a watercolor painting of a person"]
    image_rows, text_rows = scorer.image_features(images), scorer.text_features(prompts)
    assert image_rows.shape == text_rows.shape == (3, 16)
    torch.testing.assert_close(text_rows.norm(dim=1), torch.ones(3))
    # batches of 2 give the rows one batch of 3 gives; the same prompt always gives the same row
    whole = ClipTextImageScorer("MagicNaming-Tiny-TI", pretrained=None, batch_size=8)
    torch.testing.assert_close(whole.image_features(images), image_rows)
    torch.testing.assert_close(whole.text_features(prompts[:1] * 2), text_rows[[0, 0]])
    assert scorer.score(images, prompts) == pytest.approx(100 * (image_rows * text_rows).sum(1).mean().item(), abs=1e-4)
    assert scorer.score(images, prompts) != pytest.approx(scorer.score(images, prompts[::-1]), abs=1e-3)
    with pytest.raises(ValueError, match=r"prompts: expected one per image \(3\), got 2"):
        scorer.score(images, prompts[:2])
    with pytest.raises(RuntimeError, match="could not load open_clip model 'No-Such-Model'"):
        ClipTextImageScorer("No-Such-Model")


def test_prompts_say_which_attributes_they_ask_for():
    assert asked_attributes(caption(PERSON, "night", "sad", "watercolor")) == {
        "scene": "night",
        "emotion": "sad",
        "style": "watercolor",
    }
    assert asked_attributes("a photo of a person smiling on a beach") == {"scene": "beach", "emotion": "smiling"}
    assert asked_attributes("a photo of a person") == {}


@pytest.mark.slow
def test_attribute_scorer_rewards_images_that_show_what_their_prompt_asked(detector):
    beach, forest = faces(scene="beach"), faces(scene="forest")
    scorer = AttributeScorer(detector)
    on_beach, in_forest = caption(PERSON, "beach"), caption(PERSON, "forest")
    images = beach + forest
    right = [on_beach] * len(beach) + [in_forest] * len(forest)
    assert scorer.score(images, right) >= 80  # held-out scene accuracy of such a detector: about 0.9
    assert scorer.score(images, right[::-1]) <= 20  # every image asked for the other scene
    followed = scorer.followed(beach[:2], [on_beach, caption(PERSON)])
    assert followed[1] is None and isinstance(followed[0], bool)
    assert attributes_followed(detector, beach[:1], [{"scene": "beach", "style": "watercolor"}]) == [False]
    with pytest.raises(FileNotFoundError, match="world: expected a miniature world folder with detectors/"):
        AttributeScorer("/nonexistent-world")


@pytest.mark.slow
def test_judge_scorer_without_a_detector_tells_a_persons_images_from_others_and_never_drops_a_row(judge):
    scorer = JudgeIdentityScorer(judge)  # as in a world built before the detector's person head
    assert scorer.detects_faces is False and scorer.dim == judge.config.net.dim
    people = 4
    photos = {p: [synthetic_face(FRESH_PEOPLE + p, v, 32) for v in range(6)] for p in range(people)}
    rows = {p: scorer.embed(images) for p, images in photos.items()}  # photos 0–2 reference, 3–5 "generated"
    assert rows[0].shape == (6, scorer.dim) and rows[0].dtype == np.float32 and not np.isnan(rows[0]).any()
    assert face_detection_rate(rows[0]) == 1.0
    own = [reference_similarity(rows[p][3:], rows[p][:3]) for p in range(people)]
    other = [reference_similarity(rows[p][3:], rows[(p + 1) % people][:3]) for p in range(people)]
    assert min(own) > max(other)
    mixed = np.concatenate([rows[p][3:4] for p in range(people)])
    assert min(identity_consistency(rows[p][3:]) for p in range(people)) > identity_consistency(mixed)
    with pytest.raises(FileNotFoundError, match="world: expected a miniature world folder with judge/"):
        JudgeIdentityScorer("/nonexistent-world")


@pytest.mark.slow
def test_judge_scorer_writes_nan_rows_where_the_detector_sees_no_person(judge, detector, tmp_path):
    judge.save(tmp_path / "world/judge")
    detector.save(tmp_path / "world/detectors")
    scorer = JudgeIdentityScorer(tmp_path / "world")  # a world folder: its judge and its detector's person head
    assert scorer.detects_faces is True and scorer.detector.has_person_head
    people = [synthetic_face(FRESH_PEOPLE + p, v, 32, scene=("beach", None)[v]) for p in range(3) for v in range(2)]
    empty = [synthetic_face(FRESH_PEOPLE + p, 5, 32, scene=s, face=False) for p, s in enumerate((None, "night"))]
    rows = scorer.embed([*people[:3], *empty, *people[3:]])  # 6 people and 2 scenes without one, mixed
    assert rows.shape == (8, scorer.dim) and rows.dtype == np.float32
    assert np.isnan(rows[3:5]).all() and not np.isnan(rows[[0, 1, 2, 5, 6, 7]]).any()
    np.testing.assert_allclose(np.linalg.norm(rows[[0, 1, 2, 5, 6, 7]], axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(rows[[0, 1, 2, 5, 6, 7]], JudgeIdentityScorer(judge).embed(people), atol=1e-6)
    assert face_detection_rate(rows) == 6 / 8  # the share of images with a person
    # the rows without a person are left out of the identity metrics, as the face stack's are
    assert reference_similarity(rows[:2], rows[5:]) == reference_similarity(rows[[0, 1, 3]], rows[5:])
    assert identity_consistency(rows[[0, 1, 3, 4]]) == identity_consistency(rows[:2])
    # a world built before the person head: its detector loads, and the scorer keeps every row
    before = AttributeDetector(DetectorConfig.from_dict({**detector.config.to_dict(), "person_share": 0.0}))
    before.save(tmp_path / "world/detectors")
    assert JudgeIdentityScorer(tmp_path / "world").detects_faces is False


def test_face_scorer_on_real_photos(real_faces, face_stack):
    folder, _ = real_faces
    scorer = FaceIdentityScorer(face_stack)
    assert scorer.detects_faces is True and scorer.dim == 128
    obama = [Image.open(folder / name) for name in ("obama.jpg", "obama2.jpg", "obama3.jpg")]
    biden, blank = Image.open(folder / "biden.jpg"), Image.new("RGB", (200, 200), "gray")
    reference = scorer.embed(obama[:2])
    generated = scorer.embed([obama[2], blank])
    assert np.isnan(generated[1]).all() and not np.isnan(generated[0]).any()
    assert face_detection_rate(generated) == 0.5
    threshold = scorer.same_person_threshold
    assert reference_similarity(generated, reference) >= threshold  # the blank image is left out
    assert reference_similarity(scorer.embed([biden]), reference) < threshold


def test_distance_extractor_from_an_open_clip_tower_feeds_fid_and_kid():
    extractor = image_distance_extractor("MagicNaming-Tiny-L")
    assert isinstance(extractor, ClipImageFeatures) and extractor.num_features == 16
    images = faces(4)
    features = distance_features(extractor, images, batch_size=3)
    assert features.shape == (8, 16) and features.dtype == torch.float64
    torch.testing.assert_close(features, distance_features(extractor, images, batch_size=8), atol=1e-5, rtol=1e-5)
    assert frechet_distance(features, features) < 1e-6 * features.var(0).sum().item()
    other = distance_features(extractor, faces(4, style="watercolor"))
    assert kernel_distance(features, other, subset_size=8)[0] > kernel_distance(features, features, subset_size=8)[0]
    module = torch.nn.Flatten()
    assert image_distance_extractor(module) is module
    with pytest.raises(ValueError, match=r"images: expected one size.*\(16, 16\), \(32, 32\)"):
        distance_features(extractor, [images[0], images[1].resize((16, 16))])
    with pytest.raises(ValueError, match="image_features: expected 'inception' or an open_clip model name"):
        image_distance_extractor("No-Such-Model")
