"""Type stubs of nof1.sklearn."""

from typing import Any, Literal, Optional

import numpy as np
import numpy.typing as npt
from sklearn.base import BaseEstimator, OutlierMixin

from . import Model

class Nof1Detector(OutlierMixin, BaseEstimator):
    k: int
    alpha: float
    warn_alpha: float
    variance: Optional[float]
    components: Optional[int]
    max_components: int
    index: Literal["auto", "exact", "hnsw"]
    folds: int
    calibration_size: int
    min_coverage: float
    seed: int
    model_: Model
    offset_: float
    n_features_in_: int
    def __init__(
        self,
        *,
        k: int = ...,
        alpha: float = ...,
        warn_alpha: float = ...,
        variance: Optional[float] = ...,
        components: Optional[int] = ...,
        max_components: int = ...,
        index: Literal["auto", "exact", "hnsw"] = ...,
        folds: int = ...,
        calibration_size: int = ...,
        min_coverage: float = ...,
        seed: int = ...,
    ) -> None: ...
    def fit(self, X: npt.ArrayLike, y: Any = ...) -> "Nof1Detector": ...
    def assess(self, X: npt.ArrayLike) -> Any: ...
    def score_samples(self, X: npt.ArrayLike) -> np.ndarray: ...
    def decision_function(self, X: npt.ArrayLike) -> np.ndarray: ...
    def predict(self, X: npt.ArrayLike) -> np.ndarray: ...
    def verdicts(self, X: npt.ArrayLike) -> np.ndarray: ...
