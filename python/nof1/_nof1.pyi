"""Type stubs of the compiled module (private: use nof1.fit, nof1.load, nof1.Model)."""

from typing import Any, Callable, Optional, Sequence, Tuple

__version__: str
CSV_COLUMNS: list[str]

class Nof1Error(Exception): ...
class TableError(ValueError): ...
class ParameterError(ValueError): ...
class ModelFormatError(ValueError): ...

class RawModel:
    def assess(
        self,
        ids: Sequence[str],
        names: Sequence[str],
        data: Any,
        groups: Optional[Sequence[str]],
        id_name: str,
        *,
        strict: bool,
        details: bool,
        fdr: Optional[float] = ...,
    ) -> Tuple[list[str], list[str], list[Any], Optional[list[str]]]: ...
    def save(self, path: str) -> None: ...
    def to_bytes(self) -> bytes: ...
    @staticmethod
    def from_bytes(data: bytes) -> "RawModel": ...
    def features(self) -> list[str]: ...
    def reference_ids(self) -> list[str]: ...
    def params(self) -> dict[str, Any]: ...
    def summary(self) -> dict[str, Any]: ...

def fit(
    ids: Sequence[str],
    names: Sequence[str],
    data: Any,
    groups: Optional[Sequence[str]],
    id_name: str,
    *,
    k: int,
    alpha: float,
    warn_alpha: float,
    variance: Optional[float],
    components: Optional[int],
    max_components: int,
    index: str,
    folds: int,
    calibration_size: int,
    min_coverage: float,
    seed: int,
    calibrate_by_group: bool,
    progress: Optional[Callable[[str, int, int], Any]] = ...,
    blocks_file: Optional[str] = ...,
    blocks: Optional[Sequence[Tuple[str, str]]] = ...,
    value_channel: bool = ...,
) -> Tuple[RawModel, list[str]]: ...
def load(path: str) -> RawModel: ...
