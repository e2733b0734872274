"""The traced noise mode: runtime factors measured in the sample world's trace dataset."""

import numpy as np

from allocate.policy.online import NoiseOptions
from allocate.policy.traced import traced_runtime_factors


def test_factors_are_runtimes_over_their_type_median(sample_dataset):
    factors = np.array(traced_runtime_factors(str(sample_dataset)))
    assert len(factors) >= 20 and (factors > 0).all()
    assert abs(np.median(factors) - 1.0) < 0.05  # each group's median is 1 by construction
    assert factors.std() > 0.05  # the sample world's runs of one type do vary
    drawn = NoiseOptions(traced_factors=tuple(factors)).draw(500, np.random.default_rng(0))
    assert set(np.round(drawn, 12)) <= set(np.round(factors, 12))
