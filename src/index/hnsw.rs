//! Approximate search with an `hnsw_rs` graph.
//!
//! The graph is built serially in reference row order, so the same reference
//! gives the same graph (hnsw_rs draws layers from a fixed-seed generator;
//! parallel insertion is not reproducible). Approximate neighbour distances are
//! never shorter than the exact ones, which is what lets the model re-check
//! only the patients the graph would not call supported.
//!
//! # Stored graph
//!
//! A fitted graph is saved in the model file (the *graph section*, layout in
//! `docs/formats.md`) so that loading a model does not re-insert every point.
//! The section records the layer of every point and every point's neighbour
//! lists (reference rows, with the distances hnsw_rs keeps alongside); the
//! coordinates are not repeated, they are the model's embeddings. All integers
//! are little-endian:
//!
//! | size | field |
//! |---|---|
//! | 8 | magic [`GRAPH_MAGIC`] |
//! | 4 | points `n` (`u32`), the reference size |
//! | 4 | dimension (`u32`), the model's search components |
//! | 1 | layers `L` (`u8`), `min(max_layers, 16)` |
//! | 1 | `max_connections` `M` (`u8`) |
//! | n | the layer of each point (`u8` < `L`), in reference row order |
//! | … | one record per point in graph order (layer 0's rows ascending, then layer 1's, …): a `u8` count of neighbour lists (≤ `L`), then per list a `u16` length (≤ 2M for list 0, ≤ M above) followed by that many (`u32` row, `f32` distance) pairs |
//!
//! hnsw_rs 0.3.5 reloads a graph only from its own two dump files (`HnswIo`:
//! file paths only, native-endian, with `unwrap`s, `assert`s and even
//! `process::exit` on malformed input). Loading therefore checks the whole
//! section first (every length bounded, every neighbour a reference row at a
//! finite non-negative distance, nothing after the last point), then writes
//! the two dump files, well-formed by construction and byte for byte what
//! hnsw_rs's own `file_dump` writes for the same graph, into a private
//! temporary directory; hnsw_rs reads them (no memory map: every point is an
//! owned copy) and the directory is removed. The reloaded graph has the same
//! layers, the same neighbour lists in the same order and the same entry
//! point, so it answers every search exactly as the graph built at fit.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use hnsw_rs::prelude::{DistL2, Hnsw, HnswIo, PointId};
use serde::{Deserialize, Serialize};

use super::Neighbour;

/// Magic bytes opening the graph section of a model file.
pub const GRAPH_MAGIC: &[u8; 8] = b"NOF1HNSW";
/// Length of the graph section's fixed header (magic, points, dimension,
/// layers, maximum connections), before the per-point levels.
pub const GRAPH_HEADER_LEN: usize = 18;
/// hnsw_rs's limit on the number of layers (its private `NB_LAYER_MAX`).
const HNSW_LAYER_LIMIT: usize = 16;

/// Named parameters of the HNSW graph (hnsw_rs's positional integers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HnswParams {
    /// Maximum links per node and layer (`M`).
    pub max_connections: usize,
    /// Candidate list size while building (`ef_construction`).
    pub ef_construction: usize,
    /// Candidate list size while searching (`ef`), at least `k`.
    pub ef_search: usize,
    /// Maximum number of layers.
    pub max_layers: usize,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            max_connections: 24,
            ef_construction: 200,
            ef_search: 96,
            max_layers: 16,
        }
    }
}

/// An HNSW graph over row-major `f32` points.
pub struct HnswIndex {
    graph: Hnsw<'static, f32, DistL2>,
    params: HnswParams,
    dim: usize,
}

impl std::fmt::Debug for HnswIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HnswIndex")
            .field("params", &self.params)
            .field("n_points", &self.graph.get_nb_point())
            .field("dim", &self.dim)
            .finish()
    }
}

impl HnswIndex {
    /// Builds the graph, inserting points serially in row order.
    ///
    /// `progress` is called with the number of points inserted so far.
    pub fn build(
        points: &[f32],
        dim: usize,
        params: HnswParams,
        mut progress: impl FnMut(usize),
    ) -> Self {
        let n = points.len() / dim.max(1);
        let graph = Hnsw::<f32, DistL2>::new(
            params.max_connections,
            n.max(1),
            params.max_layers,
            params.ef_construction,
            DistL2 {},
        );
        for (i, p) in points.chunks_exact(dim).enumerate() {
            graph.insert_slice((p, i));
            if i % 4096 == 0 {
                progress(i);
            }
        }
        progress(n);
        let mut graph = graph;
        graph.set_searching_mode(true);
        HnswIndex { graph, params, dim }
    }

    /// The graph's parameters.
    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// Approximate `k` nearest neighbours, ascending by distance then index.
    pub fn search(&self, query: &[f32], k: usize) -> Vec<Neighbour> {
        let ef = self.params.ef_search.max(k);
        let mut found: Vec<Neighbour> = self
            .graph
            .search(query, k, ef)
            .into_iter()
            .map(|n| Neighbour {
                index: n.d_id as u32,
                distance: n.distance,
            })
            .collect();
        found.sort_by(|a, b| {
            a.distance
                .total_cmp(&b.distance)
                .then(a.index.cmp(&b.index))
        });
        found.truncate(k);
        found
    }
}

/// Number of layers hnsw_rs gives a graph built with `params`.
fn layer_count(params: &HnswParams) -> usize {
    params.max_layers.min(HNSW_LAYER_LIMIT)
}

/// Longest neighbour list hnsw_rs keeps at layer `layer` (`2M` at the
/// bottom layer, `M` above).
fn max_list_len(layer: usize, max_connections: usize) -> usize {
    if layer == 0 {
        2 * max_connections
    } else {
        max_connections
    }
}

impl HnswIndex {
    /// Appends the graph section (layout in `docs/formats.md`) to `out`.
    ///
    /// # Errors
    /// A message when the graph breaks an invariant the section relies on
    /// (points inserted in row order, lists within hnsw_rs's bounds, finite
    /// distances); a graph built by [`HnswIndex::build`] never does. `out` may
    /// then hold part of a section and must be discarded.
    pub(crate) fn write_section(&self, out: &mut Vec<u8>) -> std::result::Result<(), String> {
        let n = self.graph.get_nb_point();
        let layers = self.graph.get_max_level();
        let m = self.params.max_connections;
        if n == 0 || i32::try_from(n).is_err() {
            return Err(format!("cannot store a graph of {n} points"));
        }
        let dim = u32::try_from(self.dim)
            .map_err(|_| format!("cannot store a graph of dimension {}", self.dim))?;
        let layers_u8 = u8::try_from(layers)
            .ok()
            .filter(|&l| l >= 1 && layers == layer_count(&self.params))
            .ok_or_else(|| format!("graph has {layers} layers, its parameters say otherwise"))?;
        let m_u8 = u8::try_from(m)
            .ok()
            .filter(|&v| v >= 1)
            .ok_or_else(|| format!("cannot store max_connections {m}"))?;
        out.extend_from_slice(GRAPH_MAGIC);
        out.extend_from_slice(&(n as u32).to_le_bytes());
        out.extend_from_slice(&dim.to_le_bytes());
        out.push(layers_u8);
        out.push(m_u8);
        let levels_at = out.len();
        out.resize(levels_at + n, u8::MAX);
        let points = self.graph.get_point_indexation();
        let mut seen = 0usize;
        for layer in 0..layers {
            let mut previous: Option<usize> = None;
            for (rank, p) in points.get_layer_iterator(layer).enumerate() {
                let row = p.get_origin_id();
                if p.get_point_id() != PointId(layer as u8, rank as i32) {
                    return Err(format!(
                        "point {row} has an unexpected position in layer {layer}"
                    ));
                }
                if row >= n || out[levels_at + row] != u8::MAX {
                    return Err(format!("point {row} is out of range or repeated"));
                }
                if previous.is_some_and(|q| q >= row) {
                    return Err(format!("layer {layer} is not in row order"));
                }
                previous = Some(row);
                out[levels_at + row] = layer as u8;
                seen += 1;
                let lists = p.get_neighborhood_id();
                let used = lists
                    .iter()
                    .rposition(|l| !l.is_empty())
                    .map_or(0, |i| i + 1);
                if used > layers {
                    return Err(format!("point {row} has neighbours above the top layer"));
                }
                out.push(used as u8);
                for (j, list) in lists[..used].iter().enumerate() {
                    if list.len() > max_list_len(j, m) {
                        return Err(format!(
                            "point {row} has {} neighbours in layer {j}",
                            list.len()
                        ));
                    }
                    out.extend_from_slice(&(list.len() as u16).to_le_bytes());
                    for nb in list {
                        if nb.d_id >= n || !(nb.distance >= 0.0 && nb.distance.is_finite()) {
                            return Err(format!("point {row} has an invalid neighbour"));
                        }
                        out.extend_from_slice(&(nb.d_id as u32).to_le_bytes());
                        out.extend_from_slice(&nb.distance.to_le_bytes());
                    }
                }
            }
        }
        if seen != n {
            return Err(format!("{seen} of {n} points found in the layers"));
        }
        Ok(())
    }

    /// Rebuilds the graph from a checked section without inserting any point.
    ///
    /// `points` are the row-major search coordinates the graph was built on
    /// (`n × dim`, as for [`HnswIndex::build`]).
    ///
    /// # Errors
    /// [`GraphLoadError::Corrupt`] when `points` or `params` do not match the
    /// section, [`GraphLoadError::Io`] when the temporary directory cannot be
    /// written, [`GraphLoadError::Library`] if hnsw_rs refuses its files.
    pub(crate) fn from_stored(
        stored: &StoredGraph<'_>,
        points: &[f32],
        params: HnswParams,
    ) -> std::result::Result<Self, GraphLoadError> {
        if stored.n.checked_mul(stored.dim) != Some(points.len()) {
            return Err(GraphLoadError::Corrupt(
                "the graph does not match the embeddings".into(),
            ));
        }
        if layer_count(&params) != stored.layers || params.max_connections != stored.max_connections
        {
            return Err(GraphLoadError::Corrupt(
                "the graph does not match the HNSW parameters".into(),
            ));
        }
        let dir = TempDir::new().map_err(|e| GraphLoadError::Io {
            path: std::env::temp_dir(),
            source: e,
        })?;
        write_dump_files(stored, points, params.ef_construction, dir.path()).map_err(|e| {
            GraphLoadError::Io {
                path: dir.path().to_path_buf(),
                source: e,
            }
        })?;
        // hnsw_rs ties a reloaded graph's lifetime to the `HnswIo` it was read
        // through, because that reader may hold a memory map of the data file.
        // No map is used here (`ReloadOptions::new(false)`): every point is an
        // owned copy read from the file. Leaking the small reader (a path, a
        // name and a counter: about a hundred bytes per graph loaded) gives a
        // `'static` graph without unsafe code.
        let io: &'static HnswIo = Box::leak(Box::new(HnswIo::new_with_options(
            dir.path(),
            DUMP_BASENAME,
            hnsw_rs::prelude::ReloadOptions::new(false),
        )));
        // Last guard: the files are well-formed by construction, but hnsw_rs
        // asserts rather than returns errors.
        let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            io.load_hnsw_with_dist::<f32, DistL2>(DistL2 {})
        }));
        drop(dir);
        let mut graph = match loaded {
            Ok(Ok(g)) => g,
            Ok(Err(e)) => return Err(GraphLoadError::Library(e.to_string())),
            Err(_) => {
                return Err(GraphLoadError::Library(
                    "hnsw_rs panicked while reading the graph".into(),
                ));
            }
        };
        if graph.get_nb_point() != stored.n || graph.get_max_level() != stored.layers {
            return Err(GraphLoadError::Library(format!(
                "hnsw_rs read {} points in {} layers, expected {} in {}",
                graph.get_nb_point(),
                graph.get_max_level(),
                stored.n,
                stored.layers
            )));
        }
        graph.set_searching_mode(true);
        Ok(HnswIndex {
            graph,
            params,
            dim: stored.dim,
        })
    }
}

/// Why a stored graph could not be loaded.
#[derive(Debug)]
pub(crate) enum GraphLoadError {
    /// The section does not match the model it is stored with.
    Corrupt(String),
    /// The temporary directory for hnsw_rs's files could not be written.
    Io {
        /// The directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// hnsw_rs refused the files it was given (not expected after the checks).
    Library(String),
}

/// A graph section that passed every check of [`StoredGraph::parse`].
pub(crate) struct StoredGraph<'a> {
    n: usize,
    dim: usize,
    layers: usize,
    max_connections: usize,
    /// Layer of each point, in reference row order.
    levels: &'a [u8],
    /// The per-point neighbour records, in graph order.
    adjacency: &'a [u8],
    /// Rows in graph order: layer 0's rows ascending, then layer 1's, …
    order: Vec<u32>,
    /// Rank of each row within its layer.
    ranks: Vec<u32>,
    /// Number of points in each layer.
    layer_sizes: Vec<usize>,
    /// Section length in bytes.
    len: usize,
}

impl std::fmt::Debug for StoredGraph<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredGraph")
            .field("n", &self.n)
            .field("dim", &self.dim)
            .field("layers", &self.layers)
            .field("max_connections", &self.max_connections)
            .field("layer_sizes", &self.layer_sizes)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

/// Bounds-checked little-endian reads from a byte slice.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    fn take(&mut self, k: usize) -> std::result::Result<&'a [u8], String> {
        let left = self.bytes.len() - self.pos;
        if k > left {
            return Err(format!(
                "truncated: {k} bytes needed at byte {}, {left} left",
                self.pos
            ));
        }
        let s = &self.bytes[self.pos..self.pos + k];
        self.pos += k;
        Ok(s)
    }

    fn u8(&mut self) -> std::result::Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> std::result::Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> std::result::Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// One neighbour record: reference row and distance.
fn edge(b: &[u8]) -> (u32, f32) {
    (
        u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
        f32::from_le_bytes([b[4], b[5], b[6], b[7]]),
    )
}

impl<'a> StoredGraph<'a> {
    /// Checks a graph section against the model it is stored with: `n`
    /// reference members, `dim` search components and the HNSW `params`.
    ///
    /// Every length is bounded before it is used, every neighbour must be a
    /// reference row with a finite, non-negative distance, and the section must
    /// end exactly after the last point.
    ///
    /// # Errors
    /// A message naming the first problem (with its byte offset in the section
    /// for a truncation).
    pub(crate) fn parse(
        bytes: &'a [u8],
        n: usize,
        dim: usize,
        params: &HnswParams,
    ) -> std::result::Result<Self, String> {
        let mut r = Reader::new(bytes);
        if r.take(GRAPH_MAGIC.len())? != GRAPH_MAGIC {
            return Err("the graph section does not start with its magic bytes".into());
        }
        let n_stored = r.u32()? as usize;
        if n_stored != n {
            return Err(format!(
                "the graph has {n_stored} points, the reference {n}"
            ));
        }
        if n == 0 || i32::try_from(n).is_err() {
            return Err(format!("cannot load a graph of {n} points"));
        }
        let dim_stored = r.u32()? as usize;
        if dim_stored != dim {
            return Err(format!(
                "the graph has dimension {dim_stored}, the model searches {dim} components"
            ));
        }
        let layers = r.u8()? as usize;
        if layers == 0 || layers != layer_count(params) {
            return Err(format!(
                "the graph has {layers} layers, its parameters say {}",
                layer_count(params)
            ));
        }
        let m = r.u8()? as usize;
        if m != params.max_connections {
            return Err(format!(
                "the graph has max_connections {m}, its parameters say {}",
                params.max_connections
            ));
        }
        let levels = r.take(n)?;
        let mut layer_sizes = vec![0usize; layers];
        for (row, &l) in levels.iter().enumerate() {
            match layer_sizes.get_mut(l as usize) {
                Some(size) => *size += 1,
                None => return Err(format!("point {row} is in layer {l} of {layers}")),
            }
        }
        let mut next: Vec<usize> = layer_sizes
            .iter()
            .scan(0usize, |start, &size| {
                let s = *start;
                *start += size;
                Some(s)
            })
            .collect();
        let starts = next.clone();
        let mut order = vec![0u32; n];
        let mut ranks = vec![0u32; n];
        for (row, &l) in levels.iter().enumerate() {
            let l = l as usize;
            let at = next[l];
            order[at] = row as u32;
            ranks[row] = (at - starts[l]) as u32;
            next[l] += 1;
        }
        let adjacency_at = r.pos;
        for &row in &order {
            let used = r.u8()? as usize;
            if used > layers {
                return Err(format!(
                    "point {row} has neighbour lists for {used} layers of {layers}"
                ));
            }
            for j in 0..used {
                let count = r.u16()? as usize;
                if count > max_list_len(j, m) {
                    return Err(format!(
                        "point {row} has {count} neighbours in layer {j}, at most {} allowed",
                        max_list_len(j, m)
                    ));
                }
                for e in r.take(count * 8)?.chunks_exact(8) {
                    let (nb, d) = edge(e);
                    if nb as usize >= n {
                        return Err(format!(
                            "point {row} has neighbour {nb}, beyond the {n} points"
                        ));
                    }
                    if !(d >= 0.0 && d.is_finite()) {
                        return Err(format!("point {row} has a neighbour at distance {d}"));
                    }
                }
            }
        }
        let left = bytes.len() - r.pos;
        if left != 0 {
            return Err(format!("{left} unexpected bytes after the last point"));
        }
        Ok(StoredGraph {
            n,
            dim,
            layers,
            max_connections: m,
            levels,
            adjacency: &bytes[adjacency_at..],
            order,
            ranks,
            layer_sizes,
            len: bytes.len(),
        })
    }

    /// Section length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

// Constants of hnsw_rs 0.3.5's dump format (`src/hnswio.rs`, private there).
// `dump_files_equal_hnsw_rs_file_dump` pins them against its own `file_dump`.
const MAGICDESCR_4: u32 = 0x002a_6779;
const MAGICLAYER: u32 = 0x000a_676f;
const MAGICPOINT: u32 = 0x000a_678f;
const MAGICDATAP: u32 = 0xa67f_0000;
/// hnsw_rs's `DumpMode::Full`: neighbours carry their layer and rank.
const DUMPMODE_FULL: u8 = 1;
/// Base name of the dump files (`graph.hnsw.graph`, `graph.hnsw.data`).
const DUMP_BASENAME: &str = "graph";

/// Writes hnsw_rs's two dump files for `stored` into `dir`.
fn write_dump_files(
    stored: &StoredGraph<'_>,
    points: &[f32],
    ef_construction: usize,
    dir: &Path,
) -> std::io::Result<()> {
    let create = |suffix: &str| -> std::io::Result<BufWriter<std::fs::File>> {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dir.join(format!("{DUMP_BASENAME}.hnsw.{suffix}")))?;
        Ok(BufWriter::with_capacity(1 << 20, f))
    };
    let mut graph = create("graph")?;
    let mut data = create("data")?;
    write_dump(stored, points, ef_construction, &mut graph, &mut data)?;
    graph.into_inner().map_err(|e| e.into_error())?;
    data.into_inner().map_err(|e| e.into_error())?;
    Ok(())
}

/// Writes `stored` in hnsw_rs's dump format (`DumpMode::Full`, native
/// endianness, description format 4): the graph stream and the data stream,
/// byte for byte what hnsw_rs's own `file_dump` writes for the same graph.
fn write_dump(
    stored: &StoredGraph<'_>,
    points: &[f32],
    ef_construction: usize,
    graph: &mut impl Write,
    data: &mut impl Write,
) -> std::io::Result<()> {
    let corrupt = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    let (n, dim, layers, m) = (stored.n, stored.dim, stored.layers, stored.max_connections);
    // Description.
    graph.write_all(&MAGICDESCR_4.to_ne_bytes())?;
    graph.write_all(&[DUMPMODE_FULL, m as u8])?;
    graph.write_all(&(1.0 / (m as f64).ln()).to_ne_bytes())?;
    graph.write_all(&[layers as u8])?;
    graph.write_all(&ef_construction.to_ne_bytes())?;
    graph.write_all(&n.to_ne_bytes())?;
    graph.write_all(&dim.to_ne_bytes())?;
    for name in [
        std::any::type_name::<DistL2>(),
        std::any::type_name::<f32>(),
    ] {
        graph.write_all(&name.len().to_ne_bytes())?;
        graph.write_all(name.as_bytes())?;
    }
    data.write_all(&MAGICDATAP.to_ne_bytes())?;
    data.write_all(&dim.to_ne_bytes())?;
    // Layers, points and their neighbour lists.
    graph.write_all(&[layers as u8])?;
    let mut r = Reader::new(stored.adjacency);
    let mut at = 0usize;
    for (layer, &size) in stored.layer_sizes.iter().enumerate() {
        graph.write_all(&MAGICLAYER.to_ne_bytes())?;
        graph.write_all(&size.to_ne_bytes())?;
        for _ in 0..size {
            let row = stored.order[at] as usize;
            at += 1;
            graph.write_all(&MAGICPOINT.to_ne_bytes())?;
            graph.write_all(&row.to_ne_bytes())?;
            graph.write_all(&[layer as u8])?;
            graph.write_all(&(stored.ranks[row] as i32).to_ne_bytes())?;
            let used = r.u8().map_err(corrupt)? as usize;
            for j in 0..layers {
                let count = if j < used {
                    r.u16().map_err(corrupt)? as usize
                } else {
                    0
                };
                graph.write_all(&count.to_ne_bytes())?;
                for e in r.take(count * 8).map_err(corrupt)?.chunks_exact(8) {
                    let (nb, d) = edge(e);
                    let nb = nb as usize;
                    graph.write_all(&nb.to_ne_bytes())?;
                    graph.write_all(&[stored.levels[nb]])?;
                    graph.write_all(&(stored.ranks[nb] as i32).to_ne_bytes())?;
                    graph.write_all(&d.to_ne_bytes())?;
                }
            }
            let v = points
                .get(row * dim..(row + 1) * dim)
                .ok_or_else(|| corrupt(format!("no coordinates for point {row}")))?;
            data.write_all(&MAGICDATAP.to_ne_bytes())?;
            data.write_all(&(row as u64).to_ne_bytes())?;
            data.write_all(&((dim * 4) as u64).to_ne_bytes())?;
            for x in v {
                data.write_all(&x.to_ne_bytes())?;
            }
        }
    }
    // Entry point: the first point of the top layer. Points are inserted in
    // row order and hnsw_rs moves the entry point only to a point on a
    // strictly higher layer, so it is the lowest row of the highest level.
    let top = stored
        .layer_sizes
        .iter()
        .rposition(|&s| s > 0)
        .ok_or_else(|| corrupt("empty graph".into()))?;
    let first_top: usize = stored.layer_sizes[..top].iter().sum();
    let entry = stored.order[first_top] as usize;
    graph.write_all(&entry.to_ne_bytes())?;
    graph.write_all(&[top as u8])?;
    graph.write_all(&0i32.to_ne_bytes())?;
    Ok(())
}

/// A private directory under the system temporary directory, removed (with
/// its contents) when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<Self> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        let mut last = None;
        for _ in 0..16 {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let path = base.join(format!(
                "nof1-hnsw-{}-{}-{nanos}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            let mut builder = std::fs::DirBuilder::new();
            #[cfg(unix)]
            {
                use std::os::unix::fs::DirBuilderExt;
                builder.mode(0o700);
            }
            match builder.create(&path) {
                Ok(()) => return Ok(TempDir(path)),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::other("no temporary directory")))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::SplitMix64;

    /// `n` clustered points in `dim` dimensions; with `grid`, coordinates are
    /// rounded to integers so that duplicates and equal distances abound.
    fn cloud(n: usize, dim: usize, seed: u64, grid: bool) -> Vec<f32> {
        let mut rng = SplitMix64::new(seed);
        let centres: Vec<f64> = (0..8 * dim).map(|_| rng.normal() * 6.0).collect();
        let mut out = Vec::with_capacity(n * dim);
        for _ in 0..n {
            let c = rng.below(8);
            for j in 0..dim {
                let v = centres[c * dim + j] + rng.normal();
                out.push(if grid { v.round() as f32 } else { v as f32 });
            }
        }
        out
    }

    /// Queries: jittered members, exact members, and far-out points.
    fn queries(points: &[f32], dim: usize, seed: u64) -> Vec<Vec<f32>> {
        let n = points.len() / dim;
        let mut rng = SplitMix64::new(seed);
        let mut qs = Vec::new();
        for i in 0..300 {
            let p = &points[rng.below(n) * dim..][..dim];
            qs.push(match i % 3 {
                0 => p.iter().map(|&x| x + 0.3 * rng.normal() as f32).collect(),
                1 => p.to_vec(),
                _ => p
                    .iter()
                    .map(|&x| x * 40.0 + 500.0 * rng.normal() as f32)
                    .collect(),
            });
        }
        qs
    }

    fn cheap() -> HnswParams {
        HnswParams {
            max_connections: 12,
            ef_construction: 48,
            ef_search: 32,
            max_layers: 16,
        }
    }

    fn section(g: &HnswIndex) -> Vec<u8> {
        let mut out = Vec::new();
        g.write_section(&mut out).expect("section");
        out
    }

    fn reload(bytes: &[u8], points: &[f32], dim: usize, params: HnswParams) -> HnswIndex {
        let stored = StoredGraph::parse(bytes, points.len() / dim, dim, &params).expect("parse");
        HnswIndex::from_stored(&stored, points, params).expect("load")
    }

    #[track_caller]
    fn assert_same_searches(a: &HnswIndex, b: &HnswIndex, qs: &[Vec<f32>]) {
        for (i, q) in qs.iter().enumerate() {
            for k in [1, 10] {
                let x = a.search(q, k);
                let y = b.search(q, k);
                let bits = |v: &[Neighbour]| -> Vec<(u32, u32)> {
                    v.iter().map(|n| (n.index, n.distance.to_bits())).collect()
                };
                assert_eq!(bits(&x), bits(&y), "query {i}, k {k}");
            }
        }
    }

    #[test]
    fn stored_graph_answers_identical_searches() {
        let poor = HnswParams {
            max_connections: 2,
            ef_construction: 2,
            ef_search: 1,
            max_layers: 2,
        };
        for (n, dim, grid, params) in [
            (1500, 6, false, cheap()),
            (1500, 3, true, cheap()),
            (800, 4, false, poor),
            (1, 3, false, cheap()),
            (2, 3, true, cheap()),
        ] {
            let points = cloud(n, dim, n as u64 + dim as u64, grid);
            let built = HnswIndex::build(&points, dim, params, |_| {});
            let bytes = section(&built);
            let loaded = reload(&bytes, &points, dim, params);
            assert_same_searches(&built, &loaded, &queries(&points, dim, 7));
            // The reloaded graph stores the same section again.
            assert_eq!(section(&loaded), bytes, "n {n}, dim {dim}");
        }
    }

    /// The dump files written from a section are byte for byte hnsw_rs's own
    /// `file_dump` of the graph: same constants, same layout, same entry point.
    #[test]
    fn dump_files_equal_hnsw_rs_file_dump() {
        use hnsw_rs::prelude::AnnT;
        for (n, grid) in [(1200, false), (600, true)] {
            let dim = 5;
            let points = cloud(n, dim, 3, grid);
            let built = HnswIndex::build(&points, dim, cheap(), |_| {});
            let dir = TempDir::new().expect("temp dir");
            let name = built.graph.file_dump(dir.path(), "theirs").expect("dump");
            let theirs_graph =
                std::fs::read(dir.path().join(format!("{name}.hnsw.graph"))).expect("graph file");
            let theirs_data =
                std::fs::read(dir.path().join(format!("{name}.hnsw.data"))).expect("data file");
            let bytes = section(&built);
            let stored = StoredGraph::parse(&bytes, n, dim, &cheap()).expect("parse");
            let (mut graph, mut data) = (Vec::new(), Vec::new());
            write_dump(
                &stored,
                &points,
                cheap().ef_construction,
                &mut graph,
                &mut data,
            )
            .expect("dump");
            assert!(graph == theirs_graph, "graph files differ (n {n})");
            assert!(data == theirs_data, "data files differ (n {n})");
        }
    }

    #[test]
    fn temporary_directory_is_private_and_removed() {
        let dir = TempDir::new().expect("temp dir");
        let path = dir.path().to_path_buf();
        assert!(path.starts_with(std::env::temp_dir()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        let (points, dim, bytes) = small_section();
        let stored = StoredGraph::parse(&bytes, points.len() / dim, dim, &cheap()).expect("parse");
        write_dump_files(&stored, &points, 48, &path).expect("write");
        // The files are created, never overwritten.
        assert!(write_dump_files(&stored, &points, 48, &path).is_err());
        drop(dir);
        assert!(!path.exists());
    }

    fn small_section() -> (Vec<f32>, usize, Vec<u8>) {
        let dim = 3;
        let points = cloud(120, dim, 9, false);
        let built = HnswIndex::build(&points, dim, cheap(), |_| {});
        let bytes = section(&built);
        (points, dim, bytes)
    }

    #[test]
    fn truncated_sections_are_refused() {
        let (points, dim, bytes) = small_section();
        let n = points.len() / dim;
        assert!(StoredGraph::parse(&bytes, n, dim, &cheap()).is_ok());
        for cut in 0..bytes.len() {
            assert!(
                StoredGraph::parse(&bytes[..cut], n, dim, &cheap()).is_err(),
                "cut at {cut} accepted"
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        let e = StoredGraph::parse(&longer, n, dim, &cheap()).unwrap_err();
        assert!(e.contains("unexpected bytes"), "{e}");
    }

    /// Any single byte changed gives an error or a graph that loads and
    /// searches; never a panic.
    #[test]
    fn edited_sections_never_panic() {
        let (points, dim, bytes) = small_section();
        let n = points.len() / dim;
        let qs = queries(&points, dim, 1);
        let mut rng = SplitMix64::new(42);
        let mut loaded = 0;
        for at in 0..bytes.len() {
            for value in [bytes[at] ^ 0xff, rng.next_u64() as u8, 0, 0xff] {
                if value == bytes[at] {
                    continue;
                }
                let mut b = bytes.clone();
                b[at] = value;
                let Ok(stored) = StoredGraph::parse(&b, n, dim, &cheap()) else {
                    continue;
                };
                // Loading through hnsw_rs is slow: check a sample.
                if at % 37 == 0 {
                    let g = HnswIndex::from_stored(&stored, &points, cheap()).expect("load");
                    for q in qs.iter().take(20) {
                        assert!(g.search(q, 5).len() <= 5);
                    }
                    loaded += 1;
                }
            }
        }
        assert!(loaded > 0);
    }

    #[test]
    fn inconsistent_sections_name_the_problem() {
        let (points, dim, bytes) = small_section();
        let n = points.len() / dim;
        let p = cheap();
        let err = |b: &[u8], n: usize, dim: usize, p: &HnswParams| {
            StoredGraph::parse(b, n, dim, p).expect_err("accepted")
        };
        assert!(err(&bytes, n + 1, dim, &p).contains("points"));
        assert!(err(&bytes, n, dim + 1, &p).contains("dimension"));
        let fewer_layers = HnswParams { max_layers: 4, ..p };
        assert!(err(&bytes, n, dim, &fewer_layers).contains("layers"));
        let other_m = HnswParams {
            max_connections: 13,
            ..p
        };
        assert!(err(&bytes, n, dim, &other_m).contains("max_connections"));
        let mut b = bytes.clone();
        b[0] ^= 1;
        assert!(err(&b, n, dim, &p).contains("magic"));
        // A level beyond the layers.
        let mut b = bytes.clone();
        b[GRAPH_HEADER_LEN] = 16;
        assert!(err(&b, n, dim, &p).contains("layer 16"));
        // The first point's first neighbour: out of range, then a NaN distance.
        let first = GRAPH_HEADER_LEN + n;
        assert!(bytes[first] >= 1, "first point has no neighbour list");
        let count = u16::from_le_bytes([bytes[first + 1], bytes[first + 2]]);
        assert!(count >= 1);
        let edge_at = first + 3;
        let mut b = bytes.clone();
        b[edge_at..edge_at + 4].copy_from_slice(&(n as u32).to_le_bytes());
        assert!(err(&b, n, dim, &p).contains("beyond"));
        let mut b = bytes.clone();
        b[edge_at + 4..edge_at + 8].copy_from_slice(&f32::NAN.to_le_bytes());
        assert!(err(&b, n, dim, &p).contains("distance NaN"));
        // A list longer than hnsw_rs allows.
        let mut b = bytes.clone();
        b[first + 1..first + 3].copy_from_slice(&25u16.to_le_bytes());
        assert!(err(&b, n, dim, &p).contains("at most 24"));
        // Embeddings of another size.
        let stored = StoredGraph::parse(&bytes, n, dim, &p).expect("parse");
        let e = HnswIndex::from_stored(&stored, &points[dim..], p).unwrap_err();
        assert!(matches!(e, GraphLoadError::Corrupt(_)), "{e:?}");
    }
}
