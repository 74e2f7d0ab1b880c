//! `nof1._nof1`: the compiled half of the Python package.
//!
//! Thin glue between Python objects and the `nof1` library: tables are built
//! with [`nof1::table::TableBuilder`] (the file reader's checks and
//! messages), assessments are turned into columns with
//! [`nof1::output::columns`] and [`nof1::output::record`] (the CLI's CSV
//! columns), details with [`nof1::output::json_record`]. No detector logic
//! lives here. Fit and assess run on a worker thread with the GIL released;
//! the calling thread polls for signals and passes progress to an optional
//! Python callback, so Ctrl-C stops a fit (the worker unwinds at its next
//! progress report, at most a few hundred members searched away).

use std::panic::{AssertUnwindSafe, catch_unwind, resume_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use numpy::{PyArray1, PyArray2, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyFileNotFoundError, PyOSError, PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use nof1::model::IndexChoice;
use nof1::output::{ColumnKind, Value};
use nof1::table::{MemoryCell, Role, Table, TableBuilder};
use nof1::{ComponentRule, Error, ErrorKind, Model, Params, Progress};

create_exception!(
    _nof1,
    Nof1Error,
    PyException,
    "Base class of the errors nof1 raises itself."
);
create_exception!(
    _nof1,
    TableError,
    PyValueError,
    "A table nof1 cannot use; the message names the row and column."
);
create_exception!(
    _nof1,
    ParameterError,
    PyValueError,
    "A fit option out of range."
);
create_exception!(
    _nof1,
    ModelFormatError,
    PyValueError,
    "A file that is not a valid nof1 model."
);

/// Source name of in-memory tables in messages.
const MEMORY: &str = "<DataFrame>";

/// Converts a library error to the matching Python exception. For an
/// in-memory table, `ids` names the row's id; the CLI's `--exclude` hint
/// becomes the keyword `exclude=`.
fn to_py(e: Error, ids: Option<&[String]>) -> PyErr {
    match e.into_kind() {
        ErrorKind::Parse { position, message } | ErrorKind::Schema { position, message } => {
            if position.path != Path::new(MEMORY) {
                return TableError::new_err(format!("{position}: {message}"));
            }
            let row = position.line.map(|l| l.saturating_sub(1) as usize);
            let mut at = Vec::new();
            if let Some(r) = row {
                match ids.and_then(|ids| ids.get(r)) {
                    Some(id) => at.push(format!("row {r} (id {id:?})")),
                    None => at.push(format!("row {r}")),
                }
            }
            if let Some(c) = &position.column {
                at.push(format!("column {c:?}"));
            }
            let message = match &position.column {
                Some(c) => message.replace(
                    &format!("left out with --exclude {c}"),
                    &format!("left out with exclude=[{c:?}]"),
                ),
                None => message,
            };
            let text = if at.is_empty() {
                message
            } else {
                format!("{}: {message}", at.join(", "))
            };
            let err = TableError::new_err(text);
            Python::attach(|py| {
                let v = err.value(py);
                let _ = v.setattr("row", row);
                let _ = v.setattr("column", position.column.clone());
            });
            err
        }
        ErrorKind::InvalidParam { name, reason } => {
            ParameterError::new_err(format!("invalid parameter {name}: {reason}"))
        }
        ErrorKind::Format { path, message } => {
            ModelFormatError::new_err(format!("{}: {message}", path.display()))
        }
        ErrorKind::Io { path, source } => {
            let text = format!("{}: {source}", path.display());
            if source.kind() == std::io::ErrorKind::NotFound {
                PyFileNotFoundError::new_err(text)
            } else {
                PyOSError::new_err(text)
            }
        }
        dm @ ErrorKind::DimensionMismatch { .. } => PyValueError::new_err(dm.to_string()),
        other => Nof1Error::new_err(other.to_string()),
    }
}

/// Unwinds the worker when the caller was interrupted.
struct Interrupted;

/// A step starting or ending, as the worker reported it.
enum Event {
    Start(String, u64),
    Finish,
}

/// A [`Progress`] for the worker: records the steps for the calling thread
/// (which reports them to Python) and stops the work, by unwinding at the
/// next report, once the caller was interrupted. The library reports at
/// least every few hundred members searched (`nof1::model::fit::PROGRESS_EVERY`)
/// and between the parts of every step, so a fit stops promptly.
#[derive(Default)]
struct Stop {
    flag: AtomicBool,
    events: Mutex<Vec<Event>>,
    done: AtomicU64,
}

impl Stop {
    fn check(&self) {
        if self.flag.load(Ordering::Relaxed) {
            resume_unwind(Box::new(Interrupted));
        }
    }

    fn push(&self, event: Event) {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(event);
    }
}

impl Progress for Stop {
    fn start(&self, step: &str, total: u64) {
        self.check();
        // Under the lock, so a poll reads `done` with the events it takes.
        let mut events = self.events.lock().unwrap_or_else(|e| e.into_inner());
        self.done.store(0, Ordering::Relaxed);
        events.push(Event::Start(step.to_string(), total));
    }
    fn advance(&self, n: u64) {
        self.check();
        self.done.fetch_add(n, Ordering::Relaxed);
    }
    fn finish(&self) {
        self.check();
        self.push(Event::Finish);
    }
}

/// Calls a Python `progress(step, done, total)` on the calling thread with
/// what the worker reported since the last call: each step once when it
/// starts (`done` 0) and once when it ends (`done` = `total`), and in
/// between whenever `done` moved.
struct Reporter<'py> {
    callback: Option<Bound<'py, PyAny>>,
    step: Option<(String, u64)>,
    reported: u64,
}

impl Reporter<'_> {
    fn poll(&mut self, stop: &Stop) -> PyResult<()> {
        let Some(callback) = &self.callback else {
            return Ok(());
        };
        let (events, done) = {
            let mut events = stop.events.lock().unwrap_or_else(|e| e.into_inner());
            (
                std::mem::take(&mut *events),
                stop.done.load(Ordering::Relaxed),
            )
        };
        for event in events {
            match event {
                Event::Start(step, total) => {
                    callback.call1((step.as_str(), 0u64, total))?;
                    self.step = Some((step, total));
                    self.reported = 0;
                }
                Event::Finish => {
                    if let Some((step, total)) = self.step.take()
                        && self.reported != total
                    {
                        callback.call1((step.as_str(), total, total))?;
                    }
                }
            }
        }
        // `done` counts the units of the last step started.
        if let Some((step, total)) = &self.step {
            let done = done.min(*total);
            if done != self.reported {
                callback.call1((step.as_str(), done, *total))?;
                self.reported = done;
            }
        }
        Ok(())
    }
}

/// Runs `work` on a worker thread with the GIL released. The calling thread
/// wakes every 50 ms to pass the worker's progress to `progress` (a Python
/// callable, if given) and to check for signals: on Ctrl-C (or an exception
/// from `progress`) the work stops at its next progress report, the worker
/// is joined, and the exception is raised. A panic becomes a `RuntimeError`.
fn run<T: Send>(
    py: Python<'_>,
    progress: Option<Bound<'_, PyAny>>,
    work: impl FnOnce(&Stop) -> T + Send,
) -> PyResult<T> {
    let stop = Stop::default();
    let done = (Mutex::new(false), Condvar::new());
    let mut reporter = Reporter {
        callback: progress,
        step: None,
        reported: 0,
    };
    std::thread::scope(|s| {
        let stop = &stop;
        let done = &done;
        let worker = std::thread::Builder::new()
            .name("nof1".into())
            .stack_size(16 << 20)
            .spawn_scoped(s, move || {
                let out = catch_unwind(AssertUnwindSafe(|| work(stop)));
                let (lock, cv) = done;
                *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
                cv.notify_all();
                out
            })
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start a thread: {e}")))?;
        let mut raised = None;
        loop {
            let finished = py.detach(|| {
                let (lock, cv) = done;
                let guard = lock.lock().unwrap_or_else(|e| e.into_inner());
                let (guard, _) = cv
                    .wait_timeout_while(guard, Duration::from_millis(50), |d| !*d)
                    .unwrap_or_else(|e| e.into_inner());
                *guard
            });
            // Signals first: a Ctrl-C is never hidden by a finished fit's
            // last reports, nor by an exception of the callback.
            if let Err(e) = py.check_signals().and_then(|()| reporter.poll(stop)) {
                stop.flag.store(true, Ordering::Relaxed);
                raised = Some(e);
                break;
            }
            if finished {
                break;
            }
        }
        let joined = py.detach(|| worker.join());
        if let Some(e) = raised {
            return Err(e);
        }
        match joined {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(payload)) | Err(payload) => {
                if payload.is::<Interrupted>() {
                    return Err(PyRuntimeError::new_err("interrupted"));
                }
                let what = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown".into());
                Err(PyRuntimeError::new_err(format!(
                    "nof1 internal error (please report): {what}"
                )))
            }
        }
    })
}

/// One cell of an object column, owned while the table is built.
enum OwnedCell {
    Missing,
    Number(f64),
    Text(String),
}

fn object_cells(col: &Bound<'_, PyAny>, na: Option<&Bound<'_, PyAny>>) -> PyResult<Vec<OwnedCell>> {
    let mut out = Vec::new();
    for item in col.try_iter()? {
        let item = item?;
        let cell = if item.is_none() || na.is_some_and(|na| item.is(na)) {
            OwnedCell::Missing
        } else if let Ok(s) = item.cast::<PyString>() {
            OwnedCell::Text(s.to_cow()?.into_owned())
        } else if let Ok(v) = item.extract::<f64>() {
            if v.is_nan() {
                OwnedCell::Missing
            } else {
                OwnedCell::Number(v)
            }
        } else {
            OwnedCell::Text(item.str()?.to_cow()?.into_owned())
        };
        out.push(cell);
    }
    Ok(out)
}

/// Builds a library table from Python data: `data` is a 2-D `float64` or
/// `float32` array (rows × features), or an iterable with one entry per feature
/// (taken one at a time):
/// a 1-D `float64` array or any sequence of Python objects.
#[allow(clippy::too_many_arguments)]
fn build_table(
    py: Python<'_>,
    role: Role,
    strict: bool,
    id_name: &str,
    ids: Vec<String>,
    names: Vec<String>,
    data: &Bound<'_, PyAny>,
    groups: Option<Vec<String>>,
) -> PyResult<Table> {
    let keep_ids = ids.clone();
    let err = |e: Error| to_py(e, Some(&keep_ids));
    let mut b = TableBuilder::new(MEMORY, role, strict, id_name, ids, names).map_err(err)?;
    if let Some(g) = groups {
        b.groups(g).map_err(err)?;
    }
    let n = b.n_rows();
    if let Ok(a) = data.cast::<PyArray2<f64>>() {
        let ro = a.readonly();
        let shape = ro.shape();
        if shape[0] != n {
            return Err(PyValueError::new_err(format!(
                "the array has {} rows, {n} ids were given",
                shape[0]
            )));
        }
        // `as_slice` also accepts Fortran order: only a C-order buffer is rows.
        match ro.as_slice().ok().filter(|_| ro.is_c_contiguous()) {
            // One copy of the caller's buffer, taken by the table.
            Some(s) => {
                let values = s.to_vec();
                drop(ro);
                py.detach(|| b.rows(values)).map_err(err)?;
            }
            None => {
                let view = ro.as_array();
                for (j, col) in view.columns().into_iter().enumerate() {
                    let col: Vec<f64> = col.iter().copied().collect();
                    b.column(j, &col).map_err(err)?;
                }
            }
        }
    } else if let Ok(a) = data.cast::<PyArray2<f32>>() {
        let ro = a.readonly();
        let values: Vec<f64> = ro.as_array().iter().map(|&v| v as f64).collect();
        drop(ro);
        py.detach(|| b.rows(values)).map_err(err)?;
    } else {
        let na = py.import("pandas").and_then(|pd| pd.getattr("NA")).ok();
        for (j, col) in data.try_iter()?.enumerate() {
            let col = col?;
            if let Ok(a) = col.cast::<PyArray1<f64>>() {
                let ro = a.readonly();
                match ro.as_slice() {
                    Ok(s) => b.column(j, s),
                    Err(_) => b.column(j, &ro.as_array().to_vec()),
                }
                .map_err(err)?;
            } else {
                let owned = object_cells(&col, na.as_ref())?;
                let cells: Vec<MemoryCell<'_>> = owned
                    .iter()
                    .map(|c| match c {
                        OwnedCell::Missing => MemoryCell::Missing,
                        OwnedCell::Number(v) => MemoryCell::Number(*v),
                        OwnedCell::Text(s) => MemoryCell::Text(s),
                    })
                    .collect();
                b.cells(j, &cells).map_err(err)?;
            }
        }
    }
    b.finish().map_err(err)
}

/// A fitted nof1 model (wrapped by `nof1.Model`).
#[pyclass(module = "nof1._nof1", frozen)]
struct RawModel {
    inner: Arc<Model>,
}

fn index_choice(index: &str) -> PyResult<IndexChoice> {
    match index {
        "auto" => Ok(IndexChoice::Auto),
        "exact" => Ok(IndexChoice::Exact),
        "hnsw" => Ok(IndexChoice::Hnsw),
        "graph" => Ok(IndexChoice::Graph),
        other => Err(ParameterError::new_err(format!(
            "invalid parameter index: must be \"auto\", \"exact\", \"hnsw\" or \"graph\", got {other:?}"
        ))),
    }
}

/// Fits a model; see `nof1.fit` for the arguments.
#[pyfunction]
#[pyo3(signature = (ids, names, data, groups, id_name, *, k, alpha, warn_alpha, variance, components, max_components, index, folds, calibration_size, min_coverage, seed, calibrate_by_group, progress=None, blocks_file=None, blocks=None, value_channel=true))]
#[allow(clippy::too_many_arguments)]
fn fit(
    py: Python<'_>,
    ids: Vec<String>,
    names: Vec<String>,
    data: &Bound<'_, PyAny>,
    groups: Option<Vec<String>>,
    id_name: &str,
    k: usize,
    alpha: f64,
    warn_alpha: f64,
    variance: Option<f64>,
    components: Option<usize>,
    max_components: usize,
    index: &str,
    folds: usize,
    calibration_size: usize,
    min_coverage: f64,
    seed: u64,
    calibrate_by_group: bool,
    progress: Option<Bound<'_, PyAny>>,
    blocks_file: Option<PathBuf>,
    blocks: Option<Vec<(String, String)>>,
    value_channel: bool,
) -> PyResult<(RawModel, Vec<String>)> {
    let spec = match (blocks_file, blocks) {
        (Some(path), _) => {
            Some(nof1::table::blocks::read_blocks(&path).map_err(|e| to_py(e, None))?)
        }
        // A mapping: entry i stands for line i + 2 of a blocks file.
        (None, Some(pairs)) => Some(nof1::table::blocks::BlockSpec {
            source: PathBuf::from("blocks"),
            entries: pairs
                .into_iter()
                .enumerate()
                .map(|(i, (feature, block))| nof1::table::blocks::BlockEntry {
                    feature,
                    block,
                    line: i as u64 + 2,
                })
                .collect(),
        }),
        (None, None) => None,
    };
    let rule = match (components, variance) {
        (Some(_), Some(_)) => {
            return Err(ParameterError::new_err(
                "components and variance cannot be given together",
            ));
        }
        (Some(c), None) => ComponentRule::Fixed(c),
        (None, Some(v)) => ComponentRule::Variance(v),
        (None, None) => Params::default().components,
    };
    let params = Params::default()
        .k(k)
        .alpha(alpha)
        .warn_alpha(warn_alpha)
        .components(rule)
        .max_components(max_components)
        .index(index_choice(index)?)
        .folds(folds)
        .calibration_size(calibration_size)
        .min_coverage(min_coverage)
        .seed(seed)
        .calibrate_by_group(calibrate_by_group)
        .blocks(spec)
        .value_channel(value_channel);
    params.check().map_err(|e| to_py(e, None))?;
    let table = build_table(py, Role::Reference, true, id_name, ids, names, data, groups)?;
    let model = run(py, progress, |stop| params.fit_with_progress(&table, stop))?;
    drop(table);
    let model = model.map_err(|e| to_py(e, None))?;
    let warnings = model.data().warnings.clone();
    Ok((
        RawModel {
            inner: Arc::new(model),
        },
        warnings,
    ))
}

/// Loads a model file written by `nof1 fit` or `Model.save`.
#[pyfunction]
fn load(py: Python<'_>, path: PathBuf) -> PyResult<RawModel> {
    let model = run(py, None, |stop| Model::load_with_progress(&path, stop))?;
    Ok(RawModel {
        inner: Arc::new(model.map_err(|e| to_py(e, None))?),
    })
}

fn column_array<'py, 'a>(
    py: Python<'py>,
    kind: ColumnKind,
    values: impl Iterator<Item = Value<'a>>,
) -> PyResult<Bound<'py, PyAny>> {
    Ok(match kind {
        ColumnKind::Float => {
            let v: Vec<f64> = values
                .map(|x| match x {
                    Value::Float(f) => f,
                    _ => f64::NAN,
                })
                .collect();
            PyArray1::from_vec(py, v).into_any()
        }
        ColumnKind::Count => {
            let (v, mask): (Vec<i64>, Vec<bool>) = values
                .map(|x| match x {
                    Value::Count(Some(c)) => (c as i64, false),
                    _ => (0, true),
                })
                .unzip();
            (PyArray1::from_vec(py, v), PyArray1::from_vec(py, mask))
                .into_pyobject(py)?
                .into_any()
        }
        ColumnKind::Text => {
            let v: Vec<String> = values
                .map(|x| match x {
                    Value::Text(s) => s.into_owned(),
                    _ => String::new(),
                })
                .collect();
            PyList::new(py, v)?.into_any()
        }
    })
}

#[pymethods]
impl RawModel {
    /// Assesses patients. Returns `(names, kinds, columns, notes)`: the CSV
    /// column names, their kinds (`text`, `float`, `count`), one column each
    /// (a float array, an `(int64 values, bool mask)` pair or a list of
    /// str), and the JSON Lines object of each row when `details`. With
    /// `fdr`, the batch's Benjamini–Hochberg `q_value` column is added and
    /// patients are `invisible` by `q_value <= fdr`, as `nof1 assess --fdr`.
    #[pyo3(signature = (ids, names, data, groups, id_name, *, strict, details, fdr=None))]
    #[allow(clippy::too_many_arguments)]
    fn assess<'py>(
        &self,
        py: Python<'py>,
        ids: Vec<String>,
        names: Vec<String>,
        data: &Bound<'py, PyAny>,
        groups: Option<Vec<String>>,
        id_name: &str,
        strict: bool,
        details: bool,
        fdr: Option<f64>,
    ) -> PyResult<Bound<'py, PyTuple>> {
        if let Some(q) = fdr
            && !(q > 0.0 && q < 1.0)
        {
            return Err(ParameterError::new_err(format!(
                "fdr must be in (0, 1), got {q}"
            )));
        }
        let table = build_table(
            py,
            Role::Patients,
            strict,
            id_name,
            ids,
            names,
            data,
            groups,
        )?;
        let model = &*self.inner;
        let mut rows = run(py, None, |_| model.assess(&table))?.map_err(|e| to_py(e, None))?;
        drop(table);
        let with_q = fdr.is_some();
        if let Some(q) = fdr {
            let by_group = model.data().calibration.by_group.is_some();
            nof1::verdict::apply_fdr(&mut rows, q, by_group);
        }
        let columns = nof1::output::columns(model, with_q);
        let records: Vec<Vec<Value<'_>>> = py.detach(|| {
            rows.iter()
                .map(|a| nof1::output::record(model, a, with_q))
                .collect()
        });
        let names: Vec<&str> = columns.iter().map(|c| c.name).collect();
        let kinds: Vec<&str> = columns
            .iter()
            .map(|c| match c.kind {
                ColumnKind::Text => "text",
                ColumnKind::Float => "float",
                ColumnKind::Count => "count",
            })
            .collect();
        let mut out = Vec::with_capacity(columns.len());
        for (j, c) in columns.iter().enumerate() {
            out.push(column_array(
                py,
                c.kind,
                records
                    .iter()
                    .map(|r| r.get(j).cloned().unwrap_or(Value::Float(f64::NAN))),
            )?);
        }
        let json = if details {
            let lines: Vec<String> = py
                .detach(|| {
                    rows.iter()
                        .map(|a| nof1::output::json_record(model, a, with_q))
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(|e| Nof1Error::new_err(e.to_string()))?;
            Some(lines)
        } else {
            None
        };
        (names, kinds, out, json).into_pyobject(py)
    }

    /// Writes the model file (the CLI's format), atomically.
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let model = &*self.inner;
        run(py, None, |_| model.save(&path))?.map_err(|e| to_py(e, None))
    }

    /// The model file's bytes (for pickling).
    fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let model = &*self.inner;
        let bytes = run(py, None, |_| model.to_bytes())?.map_err(|e| to_py(e, None))?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// A model from a model file's bytes.
    #[staticmethod]
    fn from_bytes(py: Python<'_>, bytes: &[u8]) -> PyResult<RawModel> {
        let model = run(py, None, |_| Model::from_bytes(bytes, Path::new("<bytes>")))?;
        Ok(RawModel {
            inner: Arc::new(model.map_err(|e| to_py(e, None))?),
        })
    }

    /// The model's features, in order.
    fn features(&self) -> Vec<String> {
        self.inner.features().to_vec()
    }

    /// The reference member ids, in order.
    fn reference_ids(&self) -> Vec<String> {
        self.inner.reference().ids.to_vec()
    }

    /// The parameters the model was fitted with.
    fn params<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let p = self.inner.params();
        let d = PyDict::new(py);
        d.set_item("k", p.k)?;
        d.set_item("alpha", p.alpha)?;
        d.set_item("warn_alpha", p.warn_alpha)?;
        d.set_item("components", p.components.to_string())?;
        d.set_item("min_coverage", p.min_coverage)?;
        d.set_item("folds", p.folds)?;
        d.set_item("calibration_size", p.calibration_size)?;
        d.set_item("seed", p.seed)?;
        d.set_item(
            "index",
            match p.index {
                IndexChoice::Auto => "auto",
                IndexChoice::Exact => "exact",
                IndexChoice::Hnsw => "hnsw",
                IndexChoice::Graph => "graph",
            },
        )?;
        Ok(d)
    }

    /// What `nof1 inspect` prints, as a dict (from [`Model::summary`]).
    fn summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let m = &*self.inner;
        let s = m.summary();
        let p = &s.params;
        let d = PyDict::new(py);
        d.set_item("nof1_version", &s.crate_version)?;
        d.set_item("created", s.created)?;
        d.set_item("members", s.reference_size)?;
        d.set_item("density_members", s.density_members)?;
        d.set_item("features", m.features().to_vec())?;
        d.set_item("n_features", s.n_features)?;
        d.set_item("projected_features", s.projected_features)?;
        d.set_item("constant_features", s.constant_features.clone())?;
        d.set_item("dropped_features", s.dropped_features.clone())?;
        d.set_item("variants", s.n_variants)?;
        let c = &s.components;
        d.set_item("components", c.n_components)?;
        d.set_item("knn_components", c.knn_components)?;
        d.set_item("component_rule", c.rule.to_string())?;
        d.set_item("explained_variance", c.explained)?;
        d.set_item("n_parallel", c.n_parallel)?;
        d.set_item("n_variance", c.n_variance)?;
        d.set_item("noise_likeness", c.noise_likeness)?;
        d.set_item("eigenvalues", c.eigenvalues.clone())?;
        d.set_item("null_eigenvalues", c.null_eigenvalues.clone())?;
        d.set_item("k", p.k)?;
        d.set_item("alpha", p.alpha)?;
        d.set_item("warn_alpha", p.warn_alpha)?;
        d.set_item("min_coverage", p.min_coverage)?;
        d.set_item("calibration_scores", s.calibration_size)?;
        d.set_item("calibration", &s.calibration_method)?;
        d.set_item("calibration_scheme", s.calibration_scheme.to_string())?;
        d.set_item("folds", s.folds)?;
        d.set_item("support_radius", s.support_radius)?;
        d.set_item("mondrian", if s.mondrian { "per group" } else { "pooled" })?;
        d.set_item("index", s.index_kind.to_string())?;
        if let Some(chk) = s.index_check {
            let i = PyDict::new(py);
            i.set_item("probes", chk.probes)?;
            i.set_item("recall_in", chk.recall_in)?;
            i.set_item("recall_out", chk.recall_out)?;
            i.set_item("recheck_rate", chk.recheck_rate)?;
            d.set_item("index_check", i)?;
        } else {
            d.set_item("index_check", py.None())?;
        }
        d.set_item("exact_search", s.exact_search.to_string())?;
        d.set_item("seed", p.seed)?;
        let groups = PyDict::new(py);
        for g in &s.groups {
            groups.set_item(&g.group, g.n)?;
        }
        d.set_item("groups", groups)?;
        let channels = PyList::empty(py);
        for c in &s.channels {
            let e = PyDict::new(py);
            e.set_item("channel", &c.channel)?;
            e.set_item("weight", c.weight)?;
            channels.append(e)?;
        }
        d.set_item("channels", channels)?;
        let blocks = PyList::empty(py);
        for b in &s.blocks {
            let e = PyDict::new(py);
            e.set_item("block", &b.name)?;
            e.set_item("features", b.features)?;
            e.set_item("projected", b.projected)?;
            e.set_item("first_eigenvalue", b.first_eigenvalue)?;
            e.set_item("mfa_weight", b.mfa_weight)?;
            e.set_item("components_min", b.components_min)?;
            e.set_item("components_max", b.components_max)?;
            blocks.append(e)?;
        }
        d.set_item("blocks", blocks)?;
        match &s.value_support {
            Some(v) => {
                let e = PyDict::new(py);
                e.set_item("features", v.features)?;
                e.set_item("integer_valued", v.integer_valued)?;
                e.set_item("constant", v.constant.clone())?;
                d.set_item("value_support", e)?;
            }
            None => d.set_item("value_support", py.None())?,
        }
        d.set_item("warnings", m.data().warnings.clone())?;
        Ok(d)
    }
}

/// The compiled module.
#[pymodule]
fn _nof1(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<RawModel>()?;
    m.add_function(wrap_pyfunction!(fit, m)?)?;
    m.add_function(wrap_pyfunction!(load, m)?)?;
    m.add("Nof1Error", py.get_type::<Nof1Error>())?;
    m.add("TableError", py.get_type::<TableError>())?;
    m.add("ParameterError", py.get_type::<ParameterError>())?;
    m.add("ModelFormatError", py.get_type::<ModelFormatError>())?;
    m.add("CSV_COLUMNS", nof1::output::CSV_COLUMNS.to_vec())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
