"""nof1.sklearn.Nof1Detector as a scikit-learn estimator."""

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import check_estimator

import nof1
from nof1.sklearn import Nof1Detector


def test_check_estimator_in_full():
    # Raises on the first failing check.
    check_estimator(Nof1Detector())


def test_predict_scores_and_decisions_agree_with_the_model():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 4))
    Z = np.vstack([rng.normal(size=(50, 4)), rng.normal(size=(10, 4)) + 8])
    det = Nof1Detector(k=8, alpha=0.05, seed=2).fit(X)
    out = nof1.fit(X, k=8, alpha=0.05, seed=2).assess(Z)
    np.testing.assert_array_equal(det.score_samples(Z), out.p_value.to_numpy())
    pred = det.predict(Z)
    assert set(pred) <= {-1, 1}
    np.testing.assert_array_equal(pred == -1, out.verdict.to_numpy() == "invisible")
    np.testing.assert_array_equal(det.decision_function(Z) >= 0, pred == 1)
    assert (pred[-10:] == -1).all()
    assert list(det.verdicts(Z[-1:])) == ["invisible"]


def test_params_clone_and_pipeline():
    det = Nof1Detector(k=7, alpha=0.01)
    assert det.get_params()["k"] == 7
    det.set_params(alpha=0.02)
    assert clone(det).alpha == 0.02
    rng = np.random.default_rng(1)
    X = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    pipe = make_pipeline(Nof1Detector(k=5)).fit(X)
    assert pipe.predict(X.iloc[:3]).shape == (3,)
    X_missing = X.to_numpy().copy()
    X_missing[0, 1] = np.nan
    assert Nof1Detector(k=5).fit(X_missing).predict(X_missing[:2]).shape == (2,)


def test_too_few_rows_is_a_value_error():
    with pytest.raises(ValueError, match="n_samples=5"):
        Nof1Detector().fit(np.zeros((5, 2)))
