"""Type stubs of nof1 (see __init__.py for the docs)."""

import os
from typing import (
    Any,
    Callable,
    Iterable,
    Literal,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    TypedDict,
    Union,
    overload,
)

import numpy as np
import numpy.typing as npt
import pandas as pd

__version__: str
CSV_COLUMNS: list[str]
DEFAULTS: dict[str, Any]

_Data = Union[pd.DataFrame, npt.ArrayLike]
_Path = Union[str, "os.PathLike[str]"]

class ChannelInfo(TypedDict):
    channel: str  # "knn", "residual", "value" or "block:NAME"
    weight: float  # prior weight in the combination (the weights sum to 1)

class BlockInfo(TypedDict):
    block: str
    features: int
    projected: int
    first_eigenvalue: float  # mean over the fold models
    mfa_weight: float  # 1 / sqrt(first_eigenvalue)
    components_min: int
    components_max: int

class ValueSupportInfo(TypedDict):
    features: int
    integer_valued: int
    constant: list[str]

class IndexCheckInfo(TypedDict):
    probes: int
    recall_in: float
    recall_out: float
    recheck_rate: float

class Summary(TypedDict):
    nof1_version: str
    created: int
    members: int
    density_members: int
    features: list[str]
    n_features: int
    projected_features: int
    constant_features: list[str]
    dropped_features: list[str]
    variants: Optional[int]
    components: int
    knn_components: int
    component_rule: str
    explained_variance: float
    n_parallel: int
    n_variance: int
    noise_likeness: float
    eigenvalues: list[float]
    null_eigenvalues: list[float]
    k: int
    alpha: float
    warn_alpha: float
    min_coverage: float
    calibration_scores: int
    calibration: str
    calibration_scheme: str
    folds: int
    support_radius: float
    mondrian: str
    index: str
    index_check: Optional[IndexCheckInfo]
    exact_search: str
    seed: int
    groups: dict[str, int]
    channels: list[ChannelInfo]
    blocks: list[BlockInfo]
    value_support: Optional[ValueSupportInfo]
    warnings: list[str]

class Nof1Error(Exception): ...

class TableError(ValueError):
    row: Optional[int]
    column: Optional[str]

class ParameterError(ValueError): ...
class ModelFormatError(ValueError): ...

def fit(
    data: _Data,
    *,
    id_col: Optional[str] = ...,
    group_col: Optional[str] = ...,
    exclude: Iterable[str] = ...,
    calibrate_by: Optional[str] = ...,
    k: int = ...,
    alpha: float = ...,
    warn_alpha: float = ...,
    variance: Optional[float] = ...,
    components: Optional[int] = ...,
    max_components: int = ...,
    index: Literal["auto", "exact", "hnsw", "graph"] = ...,
    folds: int = ...,
    calibration_size: int = ...,
    min_coverage: float = ...,
    seed: int = ...,
    progress: Optional[Callable[[str, int, int], Any]] = ...,
    blocks: Optional[Union[Mapping[str, str], _Path]] = ...,
    value_channel: bool = ...,
) -> Model: ...
def load(path: _Path) -> Model: ...

class Model:
    @property
    def features(self) -> list[str]: ...
    @property
    def reference_ids(self) -> list[str]: ...
    @property
    def params(self) -> dict[str, Any]: ...
    def summary(self) -> Summary: ...
    def save(self, path: _Path) -> None: ...
    @overload
    def assess(
        self,
        data: _Data,
        *,
        id_col: Optional[str] = ...,
        group_col: Optional[str] = ...,
        exclude: Iterable[str] = ...,
        strict: bool = ...,
        details: Literal[False] = ...,
        fdr: Optional[float] = ...,
    ) -> pd.DataFrame: ...
    @overload
    def assess(
        self,
        data: _Data,
        *,
        id_col: Optional[str] = ...,
        group_col: Optional[str] = ...,
        exclude: Iterable[str] = ...,
        strict: bool = ...,
        details: Literal[True],
        fdr: Optional[float] = ...,
    ) -> Tuple[pd.DataFrame, list[dict[str, Any]]]: ...
