"""nof1: is this patient represented in the reference cohort?

Calibrated conformal novelty screening: fit a model on a reference cohort,
then assess patients; each gets a verdict (``supported``, ``low_support``,
``invisible``, ``insufficient_data``) and a conformal p-value. The detector is
the Rust library ``nof1``; this package only moves tables in and out.

>>> import numpy as np, nof1
>>> rng = np.random.default_rng(0)
>>> reference = rng.normal(size=(500, 4))
>>> model = nof1.fit(reference, k=10, alpha=0.05)
>>> out = model.assess(np.array([[0.1, -0.2, 0.0, 0.3], [9.0, -9.0, 9.0, -9.0]]))
>>> list(out.verdict)
['supported', 'invisible']

See docs/python.md for the whole API.
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

import numpy as np

from . import _nof1
from ._nof1 import (
    CSV_COLUMNS,
    ModelFormatError,
    Nof1Error,
    ParameterError,
    TableError,
)

__version__ = _nof1.__version__

__all__ = [
    "CSV_COLUMNS",
    "Model",
    "ModelFormatError",
    "Nof1Error",
    "ParameterError",
    "TableError",
    "fit",
    "load",
]

# Defaults shared with the CLI (nof1::model::params).
DEFAULTS = dict(
    k=10,
    alpha=0.05,
    warn_alpha=0.2,
    variance=None,
    components=None,
    max_components=64,
    index="auto",
    folds=10,
    calibration_size=20_000,
    min_coverage=0.5,
    seed=1,
)


def _is_frame(data: Any) -> bool:
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover - pandas is a dependency
        return False
    return isinstance(data, pd.DataFrame)


def _id_strings(values: Any) -> list:
    """Ids as the library's strings: missing ids become empty (an error in a
    reference, a note for a patient), anything else ``str(x)``."""
    import pandas as pd

    arr = np.asarray(values, dtype=object)
    missing = pd.isna(arr) if arr.size else np.zeros(0, dtype=bool)
    return ["" if m else str(x) for x, m in zip(arr.tolist(), missing.tolist())]


def _numeric_column(series: Any) -> Any:
    """A data-frame column as a float64 array (NaN/None/pd.NA missing), or as
    an object array when it holds text or mixed values."""
    import pandas as pd

    dtype = series.dtype
    if dtype == np.float64:
        # A view of the frame's block where pandas can give one (no copy).
        return series.to_numpy()
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_numeric_dtype(dtype):
        if not pd.api.types.is_object_dtype(dtype):
            return np.ascontiguousarray(series.to_numpy(dtype=np.float64, na_value=np.nan))
    return series.to_numpy(dtype=object)


class _Input:
    """The parts of a table the compiled module needs: ids (str), feature
    names, the values (a 2-D array or one column per feature), groups, and
    the caller's ids and index for the output."""

    __slots__ = ("ids", "names", "data", "groups", "id_name", "original_ids", "index", "n_rows")

    def __init__(
        self,
        data: Any,
        *,
        id_col: Optional[str],
        group_col: Optional[str],
        exclude: Iterable[str],
        wanted: Optional[Sequence[str]] = None,
    ) -> None:
        exclude = [exclude] if isinstance(exclude, str) else list(exclude)
        if _is_frame(data):
            self._from_frame(data, id_col, group_col, exclude, wanted)
        else:
            self._from_array(data, id_col, group_col, exclude, wanted)

    def _from_frame(self, df, id_col, group_col, exclude, wanted) -> None:
        import pandas as pd

        labels = [str(c) for c in df.columns]
        position = {}
        for j, name in enumerate(labels):
            if name in position:
                raise TableError(
                    f"duplicate column name {name!r} (columns {position[name] + 1} and {j + 1})"
                )
            position[name] = j

        def find(what: str, name: str) -> int:
            if name not in position:
                raise TableError(f"{what} column {name!r} is not in the data frame")
            return position[name]

        skip = set()
        if id_col is not None:
            j = find("id", str(id_col))
            skip.add(j)
            self.original_ids = df.iloc[:, j].to_numpy()
            self.id_name = str(id_col)
        else:
            self.original_ids = df.index.to_numpy()
            self.id_name = "index"
        if group_col is not None:
            j = find("group", str(group_col))
            skip.add(j)
            self.groups = _id_strings(df.iloc[:, j])
        else:
            self.groups = None
        for name in exclude:
            skip.add(find("excluded", str(name)))
        names = [n for j, n in enumerate(labels) if j not in skip]
        if wanted is not None:
            names = _match(names, wanted, "data frame")
        self.names = names
        # Columns are converted one at a time as the table takes them, so a
        # column that needs converting is never held beside all the others.
        self.data = (_numeric_column(df.iloc[:, position[n]]) for n in names)
        self.ids = _id_strings(self.original_ids)
        self.index = df.index
        self.n_rows = len(df)
        del pd

    def _from_array(self, data, id_col, group_col, exclude, wanted) -> None:
        if id_col is not None or group_col is not None:
            raise TableError(
                "id_col and group_col name data-frame columns; a numpy array has none "
                "(its rows are numbered, its features named f0, f1, ...)"
            )
        arr = np.asarray(data)
        if arr.ndim != 2:
            raise TableError(
                f"expected a 2-D array (rows x features) or a pandas DataFrame, got {arr.ndim} dimension(s)"
            )
        labels = [f"f{j}" for j in range(arr.shape[1])]
        excluded = set()
        for name in exclude:
            if name not in labels:
                raise TableError(f"excluded column {name!r} is not in the array")
            excluded.add(labels.index(name))
        keep = [j for j in range(arr.shape[1]) if j not in excluded]
        names = [labels[j] for j in keep]
        if wanted is not None:
            names = _match(names, wanted, "array")
            keep = [labels.index(n) for n in names]
        if arr.dtype.kind in "biuf":
            if len(keep) != arr.shape[1]:
                arr = arr[:, keep]
            if arr.dtype not in (np.float64, np.float32):
                arr = arr.astype(np.float64)
            self.data = arr
        else:
            self.data = [arr[:, j] for j in keep]
        self.names = names
        self.groups = None
        self.id_name = "row"
        self.original_ids = np.arange(arr.shape[0])
        self.ids = [str(i) for i in range(arr.shape[0])]
        self.index = None
        self.n_rows = arr.shape[0]


def _preview(names: Sequence[str]) -> str:
    s = ", ".join(list(names)[:5])
    if len(names) > 5:
        s += f", ... ({len(names) - 5} more)"
    return s


def _match(names: list, features: Sequence[str], what: str) -> list:
    """The model's features found among `names` (table order), with the CLI's
    warnings for unknown and absent columns."""
    known = set(features)
    present = [n for n in names if n in known]
    if not present:
        raise TableError(
            f"none of the model's {len(features)} features ({_preview(features)}) is a column of the {what}"
        )
    unknown = [n for n in names if n not in known]
    if unknown:
        warnings.warn(
            f"ignoring {len(unknown)} column(s) the model does not know: {_preview(unknown)}",
            stacklevel=4,
        )
    have = set(present)
    absent = [f for f in features if f not in have]
    if absent:
        warnings.warn(
            f"{len(absent)} of the model's {len(features)} features are absent and count as missing: {_preview(absent)}",
            stacklevel=4,
        )
    return present


def fit(
    data: Any,
    *,
    id_col: Optional[str] = None,
    group_col: Optional[str] = None,
    exclude: Iterable[str] = (),
    calibrate_by: Optional[str] = None,
    k: int = DEFAULTS["k"],
    alpha: float = DEFAULTS["alpha"],
    warn_alpha: float = DEFAULTS["warn_alpha"],
    variance: Optional[float] = None,
    components: Optional[int] = None,
    max_components: int = DEFAULTS["max_components"],
    index: str = DEFAULTS["index"],
    folds: int = DEFAULTS["folds"],
    calibration_size: int = DEFAULTS["calibration_size"],
    min_coverage: float = DEFAULTS["min_coverage"],
    seed: int = DEFAULTS["seed"],
    progress: Optional[Callable[[str, int, int], Any]] = None,
    blocks: "Optional[Mapping[str, str] | str | os.PathLike[str]]" = None,
    value_channel: bool = True,
) -> "Model":
    """Fits a model on a reference cohort, as ``nof1 fit`` does.

    ``data`` is a pandas DataFrame (its column names are the features) or a
    2-D numpy array (features ``f0``, ``f1``, ...). Ids come from ``id_col``,
    else the DataFrame's index (row numbers for an array); ids of any dtype
    are compared as ``str(id)`` and must be unique. ``group_col`` is a label
    kept for audits and Mondrian calibration (``calibrate_by`` must name the
    same column), never a feature; ``exclude`` lists columns to ignore.
    NaN, None and ``pd.NA`` are missing values. The keyword options are the
    CLI's: ``k``, ``alpha`` (invisible at or below), ``warn_alpha``
    (low_support at or below), ``variance`` or ``components`` (the number of
    principal components), ``max_components``, ``index`` (``"auto"``,
    ``"exact"``, ``"hnsw"``, ``"graph"``), ``folds``, ``calibration_size``,
    ``min_coverage`` and ``seed``.

    ``blocks`` gives the features' layers (multi-omic blocks, as
    ``nof1 fit --blocks``): a mapping ``{feature: block}`` or the path of a
    ``feature,block`` file; features it does not list form the block
    ``other``. ``value_channel=False`` turns the value channel off (as
    ``--no-value-channel``).

    ``progress``, if given, is called as ``progress(step, done, total)`` on
    the calling thread while the fit runs: once when each step starts
    (``done`` 0), once when it ends (``done == total``) and at most every
    50 ms in between; an exception it raises stops the fit and propagates.

    The GIL is released while fitting; Ctrl-C interrupts it promptly
    (``KeyboardInterrupt``).

    Raises ``TableError`` (a ``ValueError``) for a table the CLI would refuse,
    naming the row and column, and ``ParameterError`` (a ``ValueError``) for
    an option out of range.

    >>> import pandas as pd, numpy as np, nof1
    >>> rng = np.random.default_rng(1)
    >>> ref = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    >>> model = nof1.fit(ref, k=5, seed=7)
    >>> model.features
    ['a', 'b', 'c']
    """
    if calibrate_by is not None and calibrate_by != group_col:
        raise ParameterError(f"calibrate_by={calibrate_by!r} needs the same column as group_col")
    table = _Input(data, id_col=id_col, group_col=group_col, exclude=exclude)
    raw, notes = _nof1.fit(
        table.ids,
        table.names,
        table.data,
        table.groups,
        table.id_name,
        k=int(k),
        alpha=float(alpha),
        warn_alpha=float(warn_alpha),
        variance=None if variance is None else float(variance),
        components=None if components is None else int(components),
        max_components=int(max_components),
        index=str(index),
        folds=int(folds),
        calibration_size=int(calibration_size),
        min_coverage=float(min_coverage),
        seed=int(seed),
        calibrate_by_group=calibrate_by is not None,
        progress=progress,
        blocks_file=None if blocks is None or isinstance(blocks, Mapping) else os.fspath(blocks),
        blocks=(
            [(str(f), str(b)) for f, b in blocks.items()] if isinstance(blocks, Mapping) else None
        ),
        value_channel=bool(value_channel),
    )
    for w in notes:
        warnings.warn(w, stacklevel=2)
    return Model(raw)


def load(path: "str | os.PathLike[str]") -> "Model":
    """Loads a model file written by ``nof1 fit`` or :meth:`Model.save`.

    Raises ``ModelFormatError`` (a ``ValueError``) for a file that is not a
    valid model, ``FileNotFoundError`` when it is missing.

    >>> import nof1, tempfile, os, numpy as np
    >>> m = nof1.fit(np.random.default_rng(2).normal(size=(100, 2)), k=5)
    >>> path = os.path.join(tempfile.mkdtemp(), "m.nof1")
    >>> m.save(path)
    >>> nof1.load(path).features
    ['f0', 'f1']
    """
    return Model(_nof1.load(os.fspath(path)))


class Model:
    """A fitted nof1 model: :func:`fit` or :func:`load` make one."""

    __slots__ = ("_raw",)

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    @property
    def features(self) -> list:
        """The model's features, in order (constant columns were dropped)."""
        return self._raw.features()

    @property
    def reference_ids(self) -> list:
        """The reference member ids (as strings), in order."""
        return self._raw.reference_ids()

    @property
    def params(self) -> dict:
        """The options the model was fitted with."""
        return self._raw.params()

    def summary(self) -> dict:
        """What ``nof1 inspect`` shows, as a dict (members, features,
        components, calibration, support radius, index, groups, ...):
        ``variants`` (variant identities stored for a model fitted on
        genotypes, else None), ``channels`` (each channel's label and prior
        weight), ``blocks`` (per feature block: name, features, MFA weight,
        the components its coordinates use) and ``value_support``. The
        stub's ``Summary`` lists every key.

        >>> import nof1, numpy as np
        >>> m = nof1.fit(np.random.default_rng(3).normal(size=(100, 2)), k=5)
        >>> m.summary()["members"]
        100
        """
        return self._raw.summary()

    def save(self, path: "str | os.PathLike[str]") -> None:
        """Writes the model in the CLI's file format (``nof1 assess --model``
        reads it), atomically."""
        self._raw.save(os.fspath(path))

    def assess(
        self,
        data: Any,
        *,
        id_col: Optional[str] = None,
        group_col: Optional[str] = None,
        exclude: Iterable[str] = (),
        strict: bool = False,
        details: bool = False,
        fdr: Optional[float] = None,
    ) -> Any:
        """Assesses patients, as ``nof1 assess`` does.

        Returns a pandas DataFrame with exactly the CLI's CSV columns, in
        order (``nof1.CSV_COLUMNS``, then ``nearest_group`` for a model with
        groups, ``reason``, ``q_value`` with ``fdr``, then ``note``), one row
        per input row in input order, indexed
        like ``data`` (a RangeIndex for an array). The ``id`` column holds the
        ids as given (``id_col``, else the index; row numbers for an array).
        Features are matched by name; unknown columns are ignored and absent
        features count as missing, each with a warning. ``strict=True`` turns
        recoverable defects (text in a numeric cell) into errors, like
        ``--strict-input``; otherwise they become missing values and a note.
        ``fdr=Q`` controls the batch's false discovery rate as ``--fdr Q``:
        a ``q_value`` column (Benjamini–Hochberg over this batch's p-values,
        per group for a Mondrian model) and ``invisible`` iff ``q_value <= Q``.

        With ``details=True`` returns ``(frame, details)``: ``details`` holds
        one dict per row, the JSON Lines object of ``nof1 assess --format
        jsonl`` (``neighbours``, ``top_features``, ...).

        >>> import nof1, numpy as np
        >>> m = nof1.fit(np.random.default_rng(4).normal(size=(300, 2)), k=5)
        >>> out, details = m.assess(np.array([[0.0, 0.0], [30.0, 30.0]]), details=True)
        >>> list(out.verdict), details[1]["top_features"][0]["feature"] in ("f0", "f1")
        (['supported', 'invisible'], True)
        """
        import pandas as pd

        table = _Input(
            data, id_col=id_col, group_col=group_col, exclude=exclude, wanted=self.features
        )
        names, kinds, columns, lines = self._raw.assess(
            table.ids,
            table.names,
            table.data,
            table.groups,
            table.id_name,
            strict=bool(strict),
            details=bool(details),
            fdr=None if fdr is None else float(fdr),
        )
        frame = {}
        for name, kind, col in zip(names, kinds, columns):
            if name == "id":
                frame[name] = table.original_ids
            elif kind == "count":
                values, mask = col
                frame[name] = pd.arrays.IntegerArray(values, mask)
            else:
                frame[name] = col
        index = table.index if table.index is not None else pd.RangeIndex(table.n_rows)
        out = pd.DataFrame(frame, index=index, columns=names)
        if not details:
            return out
        rows = [json.loads(s) for s in lines]
        for row, original in zip(rows, table.original_ids.tolist()):
            row["id"] = original
        return out, rows

    def __getstate__(self) -> bytes:
        return self._raw.to_bytes()

    def __setstate__(self, state: bytes) -> None:
        self._raw = _nof1.RawModel.from_bytes(state)

    def __repr__(self) -> str:
        s = self.summary()
        return (
            f"<nof1.Model: {s['members']} members, {len(s['features'])} features, "
            f"{s['components']} components, k={s['k']}, alpha={s['alpha']}, {s['index']} index>"
        )
