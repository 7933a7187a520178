from __future__ import annotations

import numpy as np
import pytest

from dlrun.config.schema import StepEntry
from dlrun.data.base import Arrays
from dlrun.data.sparse import IndexRows
from dlrun.errors import NotFittedError
from dlrun.preprocess.base import Step
from dlrun.preprocess.pipeline import build_pipeline
from dlrun.preprocess.pipeline import fit_pipeline

EXAMPLES = {
    "standardize": ({}, np.arange(12.0).reshape(6, 2)),
    "minmax": ({"feature_range": [-1, 1]}, np.arange(12.0).reshape(6, 2)),
    "rescale": ({"scale": "1/255"}, np.full((6, 2), 255.0)),
    "binarize": ({"threshold": 0.5}, np.linspace(0, 1, 12).reshape(6, 2)),
    "flatten": ({}, np.zeros((6, 2, 3))),
    "reshape": ({"shape": [3, 2]}, np.zeros((6, 2, 3))),
    "multi_hot": ({"dim": 5}, np.array([[1, 3], [0], [], [4, 4, 9], [2], [1]], dtype=object)),
    "one_hot": ({}, np.array([0, 2, 1, 2, 0, 1])),
    "impute": ({"strategy": "median"}, np.array([[1.0], [np.nan], [3.0], [5.0], [np.nan], [7.0]])),
}


def make(name: str) -> Step:
    entry = StepEntry.model_validate({name: EXAMPLES[name][0]})
    return build_pipeline([entry]).steps[0][1]


# Every registered step's fit/transform/state contract: tests/test_contracts.py.


def test_fitted_steps_refuse_transform_before_fit() -> None:
    with pytest.raises(NotFittedError, match="call fit"):
        make("standardize").transform(np.zeros((2, 2)))


def test_standardize_statistics_come_from_training_rows_only() -> None:
    x = np.vstack([np.arange(6.0).reshape(3, 2), np.full((2, 2), 100.0)])
    y = np.zeros(5, dtype=np.int64)
    pipeline = fit_pipeline(
        [StepEntry.model_validate("standardize")], Arrays(x, y), np.array([0, 1, 2])
    )
    step = pipeline.steps[0][1]
    np.testing.assert_allclose(step.mean_, x[:3].mean(axis=0))  # type: ignore[attr-defined]
    np.testing.assert_allclose(step.scale_, x[:3].std(axis=0))  # type: ignore[attr-defined]
    x_fit = pipeline.transform(Arrays(x[:3], y[:3])).x
    np.testing.assert_allclose(x_fit, (x[:3] - x[:3].mean(axis=0)) / x[:3].std(axis=0), rtol=1e-6)


def test_values_of_the_simple_steps() -> None:
    np.testing.assert_allclose(make("rescale").transform(np.array([[255.0]])), [[1.0]])
    hot = make("multi_hot").transform(EXAMPLES["multi_hot"][1])
    assert isinstance(hot, IndexRows)  # kept sparse: each row's indices
    multi = hot.dense()
    np.testing.assert_array_equal(multi[0], [0, 1, 0, 1, 0])
    np.testing.assert_array_equal(multi[3], [0, 0, 0, 0, 1])  # 9 is outside dim 5
    assert multi[2].sum() == 0
    one_hot = make("one_hot").fit(np.array([0, 2])).transform(np.array([2, 1]))
    np.testing.assert_array_equal(one_hot, [[0, 0, 1], [0, 1, 0]])
    imputed = make("impute").fit(EXAMPLES["impute"][1]).transform(EXAMPLES["impute"][1])
    assert imputed[1, 0] == 4.0


def test_one_hot_rejects_labels_it_did_not_see() -> None:
    from dlrun.errors import DataError

    step = make("one_hot").fit(np.array([0, 1]))
    with pytest.raises(DataError, match=r"label 3 is outside 0\.\.1"):
        step.transform(np.array([3]))


def test_pipeline_applies_target_steps_to_targets_only() -> None:
    entries = [StepEntry.model_validate(s) for s in ("standardize", "one_hot")]
    x, y = np.arange(8.0).reshape(4, 2), np.array([0, 1, 1, 0])
    pipeline = fit_pipeline(entries, Arrays(x, y), np.arange(4))
    out = pipeline.transform(Arrays(x, y))
    assert out.x.shape == (4, 2) and out.y.shape == (4, 2)
    assert pipeline.transform(Arrays(x)).names() == ["x"]  # inputs only: target steps skip
