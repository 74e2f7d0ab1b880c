"""A scikit-learn estimator around :func:`nof1.fit`.

``Nof1Detector`` is an outlier detector in scikit-learn's sense: ``fit`` on
the reference cohort, then ``predict`` gives +1 for a patient the reference
represents (``supported`` or ``low_support``) and -1 for one it does not
(``invisible``, or ``insufficient_data`` when too few features are observed).
``score_samples`` is the conformal p-value (higher = more typical) and
``decision_function`` is ``score_samples - offset_``, with ``offset_`` just
above ``alpha``, so that it is negative exactly for the -1 rows. The threshold
is calibrated: no contamination fraction to guess. NaN is a missing value.

>>> import numpy as np
>>> from nof1.sklearn import Nof1Detector
>>> rng = np.random.default_rng(0)
>>> det = Nof1Detector(k=10, alpha=0.05).fit(rng.normal(size=(500, 3)))
>>> det.predict(np.array([[0.0, 0.1, -0.2], [8.0, -8.0, 8.0]])).tolist()
[1, -1]
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils.validation import check_is_fitted

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn

    def _validate_data(est: Any, X: Any, **kw: Any) -> Any:
        kw["force_all_finite"] = kw.pop("ensure_all_finite")
        return est._validate_data(X, **kw)


import nof1 as _nof1

__all__ = ["Nof1Detector"]


class Nof1Detector(OutlierMixin, BaseEstimator):
    """Calibrated novelty detector (nof1) with the scikit-learn API.

    Parameters are those of :func:`nof1.fit`: ``k`` neighbours, ``alpha``
    (invisible at or below), ``warn_alpha`` (low_support at or below),
    ``variance`` or ``components`` (principal components), ``max_components``,
    ``index`` (``"auto"``, ``"exact"`` or ``"hnsw"``), ``folds``,
    ``calibration_size``, ``min_coverage`` and ``seed``.

    Attributes after ``fit``: ``model_`` (a :class:`nof1.Model`),
    ``offset_`` (the smallest p-value that is not invisible, just above
    ``alpha``), ``n_features_in_`` and, for a DataFrame, ``feature_names_in_``.
    """

    def __init__(
        self,
        *,
        k: int = 10,
        alpha: float = 0.05,
        warn_alpha: float = 0.2,
        variance: Optional[float] = None,
        components: Optional[int] = None,
        max_components: int = 64,
        index: str = "auto",
        folds: int = 10,
        calibration_size: int = 20_000,
        min_coverage: float = 0.5,
        seed: int = 1,
    ) -> None:
        self.k = k
        self.alpha = alpha
        self.warn_alpha = warn_alpha
        self.variance = variance
        self.components = components
        self.max_components = max_components
        self.index = index
        self.folds = folds
        self.calibration_size = calibration_size
        self.min_coverage = min_coverage
        self.seed = seed

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    def fit(self, X: Any, y: Any = None) -> "Nof1Detector":
        """Fits on the reference cohort ``X`` (n_samples x n_features); ``y`` is ignored."""
        X = _validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan")
        n, p = X.shape
        if n < self.k + 2:
            raise ValueError(
                f"{n} sample(s) with {p} feature(s): nof1 needs at least k + 2 = {self.k + 2} "
                f"reference rows (n_samples={n}, k={self.k})"
            )
        self.model_ = _nof1.fit(
            X,
            k=self.k,
            alpha=self.alpha,
            warn_alpha=self.warn_alpha,
            variance=self.variance,
            components=self.components,
            max_components=self.max_components,
            index=self.index,
            folds=self.folds,
            calibration_size=self.calibration_size,
            min_coverage=self.min_coverage,
            seed=self.seed,
        )
        self.offset_ = float(np.nextafter(float(self.alpha), 1.0))
        return self

    def assess(self, X: Any) -> Any:
        """The full assessment of each row (a DataFrame with the CLI's columns)."""
        check_is_fitted(self)
        X = _validate_data(self, X, dtype=np.float64, ensure_all_finite="allow-nan", reset=False)
        return self.model_.assess(X)

    def score_samples(self, X: Any) -> np.ndarray:
        """The conformal p-value of each row (higher = better represented;
        NaN for ``insufficient_data``)."""
        return self.assess(X)["p_value"].to_numpy(dtype=np.float64)

    def decision_function(self, X: Any) -> np.ndarray:
        """``score_samples(X) - offset_``: negative exactly where ``predict`` is -1."""
        return self.score_samples(X) - self.offset_

    def predict(self, X: Any) -> np.ndarray:
        """+1 for a row the reference represents, -1 for an invisible one (or
        one with too few observed features to tell)."""
        d = self.decision_function(X)
        return np.where(d >= 0, 1, -1)

    def verdicts(self, X: Any) -> np.ndarray:
        """The verdict of each row (``supported``, ``low_support``,
        ``invisible``, ``insufficient_data``)."""
        return self.assess(X)["verdict"].to_numpy(dtype=object)
