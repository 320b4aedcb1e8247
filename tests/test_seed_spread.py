"""A figure's spread over seeds: the mean is the figure, the standard deviation and the jackknife are the textbook's."""

import math

import numpy as np
import pytest

from namespace.seed_spread import jackknife, over_seeds, plus_minus


def test_over_seeds_is_the_mean_and_sample_standard_deviation():
    spread = over_seeds([0.75, 0.875, 0.625, 1.0])
    assert spread["mean"] == pytest.approx(0.8125)
    assert spread["std"] == pytest.approx(np.std([0.75, 0.875, 0.625, 1.0], ddof=1))
    assert (spread["min"], spread["max"], spread["seeds"]) == (0.625, 1.0, 4)
    assert over_seeds([0.5])["std"] == 0.0
    assert plus_minus(spread) == "0.81 ± 0.16"


def test_over_seeds_refuses_no_seed():
    with pytest.raises(ValueError, match="per_seed: expected the figure of at least one seed, got none"):
        over_seeds([])


def test_jackknife_of_a_mean_is_its_standard_error():
    """For the mean, the jackknife's standard error equals std / sqrt(K) exactly."""
    values = [0.2, 0.9, 0.4, 0.7, 0.5]
    spread = jackknife(lambda kept: float(np.mean([values[i] for i in kept])), len(values))
    assert spread["mean"] == pytest.approx(np.mean(values))
    assert spread["std"] == pytest.approx(np.std(values, ddof=1) / math.sqrt(len(values)))
    assert len(spread["leave_one_out"]) == 5


def test_jackknife_of_a_figure_no_seed_moves_is_zero():
    assert jackknife(lambda kept: 0.75, 4)["std"] == 0.0
    assert jackknife(lambda kept: 0.75, 1) == {"mean": 0.75, "std": 0.0, "seeds": 1, "leave_one_out": []}
