"""Type stubs of nof1 (see __init__.py for the docs)."""

import os
from typing import Any, Callable, Iterable, Literal, Optional, Sequence, Tuple, Union, overload

import numpy as np
import numpy.typing as npt
import pandas as pd

__version__: str
CSV_COLUMNS: list[str]
DEFAULTS: dict[str, Any]

_Data = Union[pd.DataFrame, npt.ArrayLike]
_Path = Union[str, "os.PathLike[str]"]

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
    index: Literal["auto", "exact", "hnsw"] = ...,
    folds: int = ...,
    calibration_size: int = ...,
    min_coverage: float = ...,
    seed: int = ...,
    progress: Optional[Callable[[str, int, int], Any]] = ...,
) -> Model: ...
def load(path: _Path) -> Model: ...

class Model:
    @property
    def features(self) -> list[str]: ...
    @property
    def reference_ids(self) -> list[str]: ...
    @property
    def params(self) -> dict[str, Any]: ...
    def summary(self) -> dict[str, Any]: ...
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
