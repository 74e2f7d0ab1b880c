//! Approximate search with an HNSW graph: built by `hnsw_rs`, kept and
//! searched as nof1's own arrays (`src/index/graph.rs`).
//!
//! The graph is built serially in reference row order, so the same reference
//! gives the same graph (hnsw_rs draws layers from a fixed-seed generator;
//! parallel insertion is not reproducible). Once built, its layers, entry
//! point and neighbour lists are copied out of hnsw_rs into flat arrays in
//! reference row ids and hnsw_rs's structure is dropped; searches run on the
//! arrays and compute exact `f32` distances to the points they visit, so the
//! graph's neighbour distances are never shorter than the exact ones, which
//! is what lets the model re-check only the patients the graph would not call
//! supported.
//!
//! # Stored graph
//!
//! A fitted graph is saved in the model file (the *graph section*, layout in
//! `docs/formats.md`, code in `src/index/section.rs`) as the same arrays, so
//! loading reads them back and checks them, without hnsw_rs and without
//! rebuilding anything. Version-2 files, which stored hnsw_rs's neighbour
//! records, are converted to the arrays on load.
//!
//! # Cargo feature
//!
//! Only building a graph (`HnswIndex::build`) needs hnsw_rs, hence nof1's
//! `hnsw` feature (on by default). Without it, loading and searching a stored graph work as
//! with it, and [`HnswIndex::try_build`] returns
//! [`crate::ErrorKind::FeatureDisabled`].

#[cfg(feature = "hnsw")]
use hnsw_rs::prelude::{DistL2, Hnsw};

use super::exact::ExactResult;
use super::graph::Graph;
#[cfg(test)]
use super::section;
pub use super::section::{GRAPH_HEADER_LEN, GRAPH_MAGIC};
use super::{ExactIndex, HnswParams, Neighbour};

/// An HNSW graph over row-major `f32` points.
pub struct HnswIndex {
    graph: Graph,
    /// The row-major `n × dim` points the graph was built on.
    points: Vec<f32>,
    params: HnswParams,
    dim: usize,
    /// Queries far from the points are answered by exact search
    /// ([`HnswIndex::search_or_exact`]): those whose `k`-th distance found
    /// exceeds this.
    exact_beyond: Option<f32>,
    /// When the graph and `points` are laid out in a locality order (nearby
    /// points next to each other in memory): the row of each position.
    /// `graph` and `points` are then in positions; reported neighbours and
    /// the stored section are in rows.
    rows: Option<Vec<u32>>,
}

impl std::fmt::Debug for HnswIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HnswIndex")
            .field("params", &self.params)
            .field("n_points", &self.graph.len())
            .field("layers", &self.graph.layers.len())
            .field("dim", &self.dim)
            .finish()
    }
}

impl HnswIndex {
    /// Builds the graph with hnsw_rs, inserting points serially in row order,
    /// then keeps its layers and neighbour lists as nof1's arrays.
    ///
    /// `progress` is called with the number of points inserted so far.
    ///
    /// Needs the `hnsw` cargo feature (see [`HnswIndex::try_build`]).
    ///
    /// # Panics
    /// If `points.len()` is not a multiple of `dim`, or `dim` is 0 (caller
    /// bugs).
    #[cfg(feature = "hnsw")]
    pub fn build(
        points: &[f32],
        dim: usize,
        params: HnswParams,
        mut progress: impl FnMut(usize),
    ) -> Self {
        assert!(dim > 0 && points.len().is_multiple_of(dim), "points shape");
        let built = insert_all(points, dim, &params, &mut progress);
        let graph = extract(&built, points.len() / dim);
        HnswIndex {
            graph,
            points: points.to_vec(),
            params,
            dim,
            exact_beyond: None,
            rows: None,
        }
    }

    /// Builds the graph with nof1's own builder (`src/index/build.rs`):
    /// parallel batches, the same graph for any number of threads, given
    /// the points, the parameters, `seed` and the layout.
    ///
    /// With `order` (a permutation of the rows, nearby points next to each
    /// other), the graph and a copy of the points are laid out in it: fewer
    /// cache misses while building and searching. Searches report rows
    /// either way; the graph itself is in positions of the layout, and so is
    /// its stored section, so a model must be loaded with the same layout
    /// (nof1 derives it from the stored k-d tree). The builder's seeded
    /// insertion order is over positions, so the layout changes the graph.
    ///
    /// `progress` is called with the number of points inserted so far.
    ///
    /// # Panics
    /// If `points.len()` is not a multiple of `dim`, `dim` is 0, or `order`
    /// is not a permutation of the rows (caller bugs).
    pub fn build_own(
        points: &[f32],
        dim: usize,
        params: HnswParams,
        seed: u64,
        order: Option<Vec<u32>>,
        mut progress: impl FnMut(usize),
    ) -> Self {
        let points = match &order {
            Some(order) => lay_out(points, dim, order),
            None => points.to_vec(),
        };
        let graph = super::build::build(&points, dim, &params, seed, &mut progress);
        HnswIndex {
            graph,
            points,
            params,
            dim,
            exact_beyond: None,
            rows: order,
        }
    }

    /// Reported neighbours in rows.
    fn in_rows(&self, mut found: (Vec<Neighbour>, u32)) -> (Vec<Neighbour>, u32) {
        if let Some(rows) = &self.rows {
            for nb in &mut found.0 {
                nb.index = rows[nb.index as usize];
            }
        }
        found
    }

    /// `HnswIndex::build` when this build has the `hnsw` cargo feature.
    ///
    /// # Errors
    /// [`crate::ErrorKind::FeatureDisabled`] naming `hnsw` when it was
    /// compiled without it.
    ///
    /// # Panics
    /// As `HnswIndex::build`: if `points.len()` is not a multiple of `dim`, or
    /// `dim` is 0.
    pub fn try_build(
        points: &[f32],
        dim: usize,
        params: HnswParams,
        progress: impl FnMut(usize),
    ) -> crate::Result<Self> {
        #[cfg(feature = "hnsw")]
        {
            Ok(Self::build(points, dim, params, progress))
        }
        #[cfg(not(feature = "hnsw"))]
        {
            let _ = (points, dim, params, progress);
            Err(crate::Error::feature_disabled(
                "hnsw",
                "building an HNSW graph",
            ))
        }
    }

    /// The graph's parameters.
    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// This graph with the search beam `ef_search` (the graph is unchanged).
    pub fn with_ef_search(mut self, ef_search: usize) -> Self {
        self.set_ef_search(ef_search);
        self
    }

    /// Sets the beam width of later searches (the graph is unchanged).
    pub(crate) fn set_ef_search(&mut self, ef_search: usize) {
        self.params.ef_search = ef_search.max(1);
    }

    /// Approximate `k` nearest neighbours, ascending by distance then index.
    ///
    /// The search visits the graph with a beam of `max(ef_search, k)` on the
    /// bottom layer. Every distance is the exact Euclidean distance to the
    /// point returned (computed as [`super::ExactIndex`] computes it), so the
    /// `i`-th neighbour is never nearer than the exact `i`-th. Deterministic;
    /// safe to call from many threads at once.
    pub fn search(&self, query: &[f32], k: usize) -> Vec<Neighbour> {
        self.search_radius(query, k, None).0
    }

    /// Answers far queries by exact search in [`HnswIndex::search_or_exact`]:
    /// those whose `k`-th distance found by the graph exceeds `distance`
    /// (`None`: never). A deterministic function of the query, so calibration
    /// members and patients are searched alike.
    pub fn exact_beyond(&mut self, distance: Option<f32>) {
        self.exact_beyond = distance;
    }

    /// The graph's search, with the count of visited points within `radius`.
    fn search_radius(&self, query: &[f32], k: usize, radius: Option<f32>) -> (Vec<Neighbour>, u32) {
        let ef = self.params.ef_search.max(k);
        self.in_rows(
            self.graph
                .search_within(&self.points, self.dim, query, k, ef, radius),
        )
    }

    /// [`HnswIndex::search`], and how many of the points the search visited
    /// lie within `radius` (a lower bound on the reference members within
    /// it, up to [`super::exact::SUPPORT_CAP`]).
    pub fn search_within(&self, query: &[f32], k: usize, radius: f32) -> (Vec<Neighbour>, u32) {
        self.search_radius(query, k, Some(radius))
    }

    /// Whether a query whose graph neighbours are `found` is answered by
    /// exact search ([`HnswIndex::exact_beyond`]).
    fn is_far(&self, found: &[Neighbour], k: usize) -> bool {
        self.exact_beyond
            .is_some_and(|t| found.len() < k || found.last().is_some_and(|n| n.distance > t))
    }

    /// The graph's own answer to `query`, or `None` when
    /// [`HnswIndex::search_or_exact`] answers it by exact search instead.
    pub fn graph_answer(&self, query: &[f32], k: usize) -> Option<Vec<Neighbour>> {
        let found = self.search_radius(query, k, None).0;
        (!self.is_far(&found, k)).then_some(found)
    }

    /// The graph's `k` neighbours of `query` (leaving out the point `skip`)
    /// and its count of members within `radius`; or, for a query the graph
    /// finds far from the points (see [`HnswIndex::exact_beyond`]), the
    /// answer of `exact`, the exact index over the same points in rows.
    pub fn search_or_exact(
        &self,
        exact: &ExactIndex,
        query: &[f32],
        k: usize,
        skip: Option<u32>,
        radius: Option<f32>,
    ) -> ExactResult {
        let (neighbours, within) = match skip {
            None => self.search_radius(query, k, radius),
            Some(_) => (self.search_skipping(query, k, skip), 0),
        };
        if self.is_far(&neighbours, k) {
            exact.search(query, k, skip, radius)
        } else {
            ExactResult { neighbours, within }
        }
    }

    /// [`HnswIndex::search`] leaving the point `skip` out (a member scored
    /// among the others): the search for `k + 1`, without `skip`.
    pub fn search_skipping(&self, query: &[f32], k: usize, skip: Option<u32>) -> Vec<Neighbour> {
        match skip {
            None => self.search(query, k),
            Some(s) => {
                let mut nb = self.search(query, k + 1);
                if let Some(at) = nb.iter().position(|n| n.index == s) {
                    nb.remove(at);
                }
                nb.truncate(k);
                nb
            }
        }
    }

    /// Appends the graph section (layout in `docs/formats.md`) to `out`.
    ///
    /// # Errors
    /// A message when the graph breaks an invariant the section relies on; a
    /// graph built by [`HnswIndex::build`] never does. `out` is unchanged then.
    pub(crate) fn write_section(&self, out: &mut Vec<u8>) -> std::result::Result<(), String> {
        if self.graph.len() == 0 {
            return Err("cannot store a graph of 0 points".into());
        }
        // A laid-out graph is stored as it is searched, in positions of its
        // layout (which loading derives again from the stored k-d tree).
        super::section::write(&self.graph, self.dim, self.params.max_connections, out)
    }

    /// The index of a checked graph section over `points`, the row-major
    /// search coordinates the graph was built on (`n × dim`, as for
    /// [`HnswIndex::build`]).
    ///
    /// # Errors
    /// [`GraphLoadError::Corrupt`] when `points` or `params` do not match the
    /// section.
    #[cfg(all(test, feature = "hnsw"))]
    pub(crate) fn from_stored(
        stored: StoredGraph,
        points: &[f32],
        params: HnswParams,
    ) -> std::result::Result<Self, GraphLoadError> {
        Self::from_stored_in(stored, points, params, None)
    }

    /// [`HnswIndex::from_stored`] for a section that stores a graph laid out
    /// in `order` (see [`HnswIndex::build_own`]), when given: the points
    /// are laid out alike, and the index searches exactly as the one fit
    /// built in that order.
    ///
    /// # Errors
    /// As [`HnswIndex::from_stored`].
    ///
    /// # Panics
    /// If `order` is not a permutation of the rows (caller bug).
    pub(crate) fn from_stored_in(
        stored: StoredGraph,
        points: &[f32],
        params: HnswParams,
        order: Option<Vec<u32>>,
    ) -> std::result::Result<Self, GraphLoadError> {
        if stored.graph.len().checked_mul(stored.dim) != Some(points.len()) {
            return Err(GraphLoadError::Corrupt(
                "the graph does not match the embeddings".into(),
            ));
        }
        if stored.max_connections != params.max_connections {
            return Err(GraphLoadError::Corrupt(
                "the graph does not match the HNSW parameters".into(),
            ));
        }
        let dim = stored.dim;
        let Some(order) = order else {
            return Ok(HnswIndex {
                graph: stored.graph,
                points: points.to_vec(),
                params,
                dim,
                exact_beyond: None,
                rows: None,
            });
        };
        if order.len() != stored.graph.len() {
            return Err(GraphLoadError::Corrupt(
                "the graph does not match the layout".into(),
            ));
        }
        Ok(HnswIndex {
            graph: stored.graph,
            points: lay_out(points, dim, &order),
            params,
            dim,
            exact_beyond: None,
            rows: Some(order),
        })
    }
}

/// The row-major points in `order` (position `p` holds row `order[p]`).
fn lay_out(points: &[f32], dim: usize, order: &[u32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(points.len());
    for &r in order {
        let at = r as usize * dim;
        out.extend_from_slice(&points[at..at + dim]);
    }
    out
}

/// hnsw_rs's graph of `points`, inserted serially in row order.
#[cfg(feature = "hnsw")]
fn insert_all(
    points: &[f32],
    dim: usize,
    params: &HnswParams,
    progress: &mut impl FnMut(usize),
) -> Hnsw<'static, f32, DistL2> {
    let n = points.len() / dim;
    let built = Hnsw::<f32, DistL2>::new(
        params.max_connections,
        n.max(1),
        params.max_layers,
        params.ef_construction,
        DistL2 {},
    );
    for (i, p) in points.chunks_exact(dim).enumerate() {
        built.insert_slice((p, i));
        if i % 4096 == 0 {
            progress(i);
        }
    }
    progress(n);
    built
}

/// Appends `graph`'s section in the version-2 layout (hnsw_rs's neighbour
/// records; test helper for the version-2 reader).
#[cfg(test)]
#[allow(dead_code)] // format version 2 files are refused since version 4
pub(crate) fn write_section_v2(graph: &HnswIndex, out: &mut Vec<u8>) {
    section::write_v2(&graph.graph, &graph.points, graph.dim, &graph.params, out);
}

/// Copies hnsw_rs's graph of `n` points, inserted in row order, into nof1's
/// arrays: each point's level and neighbour rows per layer (in hnsw_rs's
/// order), and the entry point.
///
/// # Panics
/// If hnsw_rs's graph breaks the invariants of an HNSW graph built by
/// [`HnswIndex::build`] (every row once, nothing linked above the entry
/// point's level, list lengths within `2M`/`M`): a bug, not a data error.
#[cfg(feature = "hnsw")]
fn extract(built: &Hnsw<'_, f32, DistL2>, n: usize) -> Graph {
    if n == 0 {
        return Graph::default();
    }
    let points = built.get_point_indexation();
    let top = points.get_max_level_observed() as usize;
    let ids = |list: &[hnsw_rs::prelude::Neighbour]| -> Vec<u32> {
        list.iter().map(|nb| nb.d_id as u32).collect()
    };
    // First pass: levels, layer-0 list lengths, and the upper-layer lists of
    // the (few) rows that have any.
    let mut levels = vec![u8::MAX; n];
    let mut offsets = vec![0usize; n + 1];
    let mut upper: Vec<(u32, Vec<Vec<u32>>)> = Vec::new();
    for layer in 0..=top {
        for p in points.get_layer_iterator(layer) {
            let row = p.get_origin_id();
            assert!(row < n && levels[row] == u8::MAX, "hnsw_rs point {row}");
            levels[row] = layer as u8;
            let lists = p.get_neighborhood_id();
            // hnsw_rs links nothing above its entry point's level.
            assert!(
                lists.iter().skip(top + 1).all(Vec::is_empty),
                "hnsw_rs point {row}: neighbours above the top layer"
            );
            offsets[row + 1] = lists.first().map_or(0, Vec::len);
            if lists.iter().take(top + 1).skip(1).any(|l| !l.is_empty()) {
                let row_lists = lists.iter().take(top + 1).skip(1).map(|l| ids(l)).collect();
                upper.push((row as u32, row_lists));
            }
        }
    }
    assert!(levels.iter().all(|&l| l != u8::MAX), "hnsw_rs lost points");
    upper.sort_unstable_by_key(|u| u.0);
    for row in 0..n {
        offsets[row + 1] += offsets[row];
    }
    // Second pass: layer 0's lists straight into place.
    let mut neighbours = vec![0u32; offsets[n]];
    for layer in 0..=top {
        for p in points.get_layer_iterator(layer) {
            let row = p.get_origin_id();
            let lists = p.get_neighborhood_id();
            let list = lists.first().map_or(&[][..], |l| &l[..]);
            let place = &mut neighbours[offsets[row]..offsets[row + 1]];
            assert_eq!(place.len(), list.len(), "hnsw_rs point {row} changed");
            for (slot, nb) in place.iter_mut().zip(list) {
                *slot = nb.d_id as u32;
            }
        }
    }
    let layer0 = super::graph::Layer {
        rows: Vec::new(),
        offsets,
        neighbours,
    };
    // hnsw_rs moves the entry point only to a point on a strictly higher
    // layer, and the points were inserted in row order: the entry point is
    // the lowest row of the top layer.
    let entry = levels.iter().position(|&l| l as usize == top).unwrap_or(0) as u32;
    let graph = Graph::from_parts(levels, entry, top, layer0, upper);
    if let Err(e) = graph.check(built.get_max_nb_connection() as usize) {
        panic!("hnsw_rs built an inconsistent graph: {e}");
    }
    graph
}

/// Why a stored graph could not be loaded.
#[derive(Debug)]
pub(crate) enum GraphLoadError {
    /// The section does not match the model it is stored with.
    Corrupt(String),
}

/// A graph section that passed every check, read into nof1's arrays.
#[derive(Debug)]
pub(crate) struct StoredGraph {
    graph: Graph,
    dim: usize,
    max_connections: usize,
    /// Section length in bytes.
    len: usize,
}

impl StoredGraph {
    /// Reads and checks the graph section of a model file of format
    /// `version` (2: hnsw_rs's neighbour records, converted; 3: nof1's
    /// arrays) against the model it is stored with: `n` reference members,
    /// `dim` search components and the HNSW `params`.
    ///
    /// # Errors
    /// A message naming the first problem (with its byte offset in the section
    /// for a truncation).
    pub(crate) fn parse(
        bytes: &[u8],
        version: u32,
        n: usize,
        dim: usize,
        params: &HnswParams,
    ) -> std::result::Result<Self, String> {
        let graph = if version == 2 {
            super::section::parse_v2(bytes, n, dim, params)?
        } else {
            super::section::parse(bytes, n, dim, params)?
        };
        Ok(StoredGraph {
            graph,
            dim,
            max_connections: params.max_connections,
            len: bytes.len(),
        })
    }

    /// Section length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

/// The tests build graphs: they need the `hnsw` feature (the loading of a
/// stored graph without it is tested in `tests/hnsw_feature.rs`).
#[cfg(test)]
#[cfg(feature = "hnsw")]
mod tests {
    use super::*;
    use crate::index::{ExactIndex, check};
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

    fn reload(
        bytes: &[u8],
        version: u32,
        points: &[f32],
        dim: usize,
        params: HnswParams,
    ) -> HnswIndex {
        let stored =
            StoredGraph::parse(bytes, version, points.len() / dim, dim, &params).expect("parse");
        HnswIndex::from_stored(stored, points, params).expect("load")
    }

    fn bits(v: &[Neighbour]) -> Vec<(u32, u32)> {
        v.iter().map(|n| (n.index, n.distance.to_bits())).collect()
    }

    #[track_caller]
    fn assert_same_searches(a: &HnswIndex, b: &HnswIndex, qs: &[Vec<f32>]) {
        for (i, q) in qs.iter().enumerate() {
            for k in [1, 10] {
                assert_eq!(
                    bits(&a.search(q, k)),
                    bits(&b.search(q, k)),
                    "query {i}, k {k}"
                );
            }
        }
    }

    fn poor() -> HnswParams {
        HnswParams {
            max_connections: 2,
            ef_construction: 2,
            ef_search: 1,
            max_layers: 2,
        }
    }

    fn cases() -> Vec<(usize, usize, bool, HnswParams)> {
        vec![
            (1500, 6, false, cheap()),
            (1500, 3, true, cheap()),
            (800, 4, false, poor()),
            (1, 3, false, cheap()),
            (2, 3, true, cheap()),
        ]
    }

    #[test]
    fn stored_graph_answers_identical_searches() {
        for (n, dim, grid, params) in cases() {
            let points = cloud(n, dim, n as u64 + dim as u64, grid);
            let built = HnswIndex::build(&points, dim, params, |_| {});
            let bytes = section(&built);
            assert_eq!(&bytes[..8], GRAPH_MAGIC);
            let loaded = reload(&bytes, 3, &points, dim, params);
            assert_eq!(loaded.graph, built.graph, "n {n}, dim {dim}");
            assert_same_searches(&built, &loaded, &queries(&points, dim, 7));
            // The reloaded graph stores the same section again.
            assert_eq!(section(&loaded), bytes, "n {n}, dim {dim}");
        }
    }

    /// A version-2 section (hnsw_rs's records) converts to the very arrays
    /// the graph was built into.
    #[test]
    fn version_2_sections_convert_to_the_same_graph() {
        for (n, dim, grid, params) in cases() {
            let points = cloud(n, dim, n as u64 + dim as u64, grid);
            let built = HnswIndex::build(&points, dim, params, |_| {});
            let mut v2 = Vec::new();
            section::write_v2(&built.graph, &points, dim, &params, &mut v2);
            let loaded = reload(&v2, 2, &points, dim, params);
            assert_eq!(loaded.graph, built.graph, "n {n}, dim {dim}");
        }
    }

    /// The entry point taken from the layers is hnsw_rs's own: the one its
    /// `file_dump` writes at the end of the graph file (origin id, layer, rank).
    #[test]
    fn entry_point_is_hnsw_rs_entry_point() {
        use hnsw_rs::prelude::AnnT;
        // (hnsw_rs dumps only graphs of 16 layers.)
        for (n, dim, grid, params) in cases().into_iter().filter(|c| c.3.max_layers == 16) {
            let points = cloud(n, dim, 3 + n as u64, grid);
            let built = insert_all(&points, dim, &params, &mut |_| {});
            let graph = extract(&built, n);
            let dir = tempfile::tempdir().expect("temp dir");
            let name = built.file_dump(dir.path(), "theirs").expect("dump");
            let file =
                std::fs::read(dir.path().join(format!("{name}.hnsw.graph"))).expect("graph file");
            let tail = &file[file.len() - 13..];
            let origin = u64::from_ne_bytes(tail[..8].try_into().expect("8 bytes"));
            assert_eq!(origin, u64::from(graph.entry), "n {n}");
            assert_eq!(tail[8] as usize, graph.top(), "n {n}");
            assert_eq!(graph.levels[graph.entry as usize] as usize, graph.top());
        }
    }

    /// Every distance the graph reports is the exact distance to that point,
    /// and the `i`-th graph neighbour is never nearer than the exact `i`-th.
    #[test]
    fn graph_distances_are_exact_and_never_shorter() {
        for (n, dim, grid, params) in cases() {
            let points = cloud(n, dim, 17 + n as u64, grid);
            let g = HnswIndex::build(&points, dim, params, |_| {});
            let exact = ExactIndex::new_scan(points.clone(), dim);
            for q in queries(&points, dim, 5) {
                let truth = exact.search(&q, 10, None, None).neighbours;
                let got = g.search(&q, 10);
                assert!(got.len() <= 10 && got.len() == truth.len().min(got.len()));
                for (i, nb) in got.iter().enumerate() {
                    let one = ExactIndex::new_scan(
                        points[nb.index as usize * dim..][..dim].to_vec(),
                        dim,
                    );
                    let d = one.search(&q, 1, None, None).neighbours[0].distance;
                    assert_eq!(nb.distance.to_bits(), d.to_bits());
                    assert!(nb.distance >= truth[i].distance);
                }
                // Ascending by (distance, row).
                for w in got.windows(2) {
                    assert!((w[0].distance, w[0].index) < (w[1].distance, w[1].index));
                }
            }
        }
    }

    /// recall@10 of the graph against exact search on a clustered cohort, for
    /// in-distribution (jittered members) and out-of-distribution (pushed
    /// out) probes, with the default parameters.
    #[test]
    fn recall_at_10_against_exact_search() {
        let (n, dim, k) = (6000, 8, 10);
        let points = crate::rng::clustered_points(n, dim, 12, 4);
        let exact = ExactIndex::new(points.clone(), dim);
        let g = HnswIndex::build(&points, dim, HnswParams::default(), |_| {});
        let (inside, outside) = check::probes(&exact, k, 1000, 9);
        let r_in = check::recall(&exact, &g, &inside, k);
        let r_out = check::recall(&exact, &g, &outside, k);
        assert!(r_in >= 0.95, "recall in distribution {r_in}");
        assert!(r_out >= 0.95, "recall out of distribution {r_out}");
        // A graph that visits almost nothing does worse: the test can fail.
        let weak = HnswIndex::build(&points, dim, poor(), |_| {});
        assert!(check::recall(&exact, &weak, &inside, k) < 0.95);
    }

    /// Searches from many threads at once answer as one thread does.
    #[test]
    fn parallel_searches_agree() {
        use rayon::prelude::*;
        let (n, dim) = (2000, 5);
        let points = cloud(n, dim, 8, false);
        let g = HnswIndex::build(&points, dim, cheap(), |_| {});
        let qs = queries(&points, dim, 2);
        let serial: Vec<_> = qs.iter().map(|q| bits(&g.search(q, 7))).collect();
        let parallel: Vec<_> = qs.par_iter().map(|q| bits(&g.search(q, 7))).collect();
        assert_eq!(serial, parallel);
    }

    fn small_section() -> (Vec<f32>, usize, HnswIndex, Vec<u8>) {
        let dim = 3;
        let points = cloud(120, dim, 9, false);
        let built = HnswIndex::build(&points, dim, cheap(), |_| {});
        let bytes = section(&built);
        (points, dim, built, bytes)
    }

    /// A graph's version-3 section `v3` and its version-2 section, by version.
    fn both_versions(
        points: &[f32],
        dim: usize,
        built: &HnswIndex,
        v3: Vec<u8>,
    ) -> [(u32, Vec<u8>); 2] {
        let mut v2 = Vec::new();
        section::write_v2(&built.graph, points, dim, &cheap(), &mut v2);
        [(3, v3), (2, v2)]
    }

    #[test]
    fn truncated_sections_are_refused() {
        let (points, dim, built, bytes) = small_section();
        let n = points.len() / dim;
        for (version, bytes) in both_versions(&points, dim, &built, bytes) {
            assert!(StoredGraph::parse(&bytes, version, n, dim, &cheap()).is_ok());
            for cut in 0..bytes.len() {
                assert!(
                    StoredGraph::parse(&bytes[..cut], version, n, dim, &cheap()).is_err(),
                    "version {version}: cut at {cut} accepted"
                );
            }
            let mut longer = bytes.clone();
            longer.push(0);
            let e = StoredGraph::parse(&longer, version, n, dim, &cheap()).unwrap_err();
            assert!(e.contains("unexpected bytes"), "{e}");
        }
    }

    /// Any single byte changed gives an error or a graph that passes every
    /// check and searches; never a panic.
    #[test]
    fn edited_sections_never_panic() {
        let (points, dim, built, bytes) = small_section();
        let n = points.len() / dim;
        let qs = queries(&points, dim, 1);
        let mut rng = SplitMix64::new(42);
        for (version, bytes) in both_versions(&points, dim, &built, bytes) {
            let (mut loaded, mut refused) = (0, 0);
            for at in 0..bytes.len() {
                for value in [bytes[at] ^ 0xff, rng.next_u64() as u8, 0, 0xff] {
                    if value == bytes[at] {
                        continue;
                    }
                    let mut b = bytes.clone();
                    b[at] = value;
                    let Ok(stored) = StoredGraph::parse(&b, version, n, dim, &cheap()) else {
                        refused += 1;
                        continue;
                    };
                    let g = HnswIndex::from_stored(stored, &points, cheap()).expect("load");
                    for q in qs.iter().take(20) {
                        assert!(g.search(q, 5).len() <= 5);
                    }
                    loaded += 1;
                }
            }
            assert!(loaded > 0 && refused > 0, "version {version}");
        }
    }

    #[test]
    fn inconsistent_sections_name_the_problem() {
        let (points, dim, built, bytes) = small_section();
        let n = points.len() / dim;
        let p = cheap();
        let err = |b: &[u8], n: usize, dim: usize, p: &HnswParams| {
            StoredGraph::parse(b, 3, n, dim, p).expect_err("accepted")
        };
        assert!(err(&bytes, n + 1, dim, &p).contains("points"));
        assert!(err(&bytes, n, dim + 1, &p).contains("dimension"));
        let other_m = HnswParams {
            max_connections: 13,
            ..p
        };
        assert!(err(&bytes, n, dim, &other_m).contains("max_connections"));
        let top = built.graph.top();
        assert!(top >= 1, "the test graph has one layer");
        let fewer_layers = HnswParams {
            max_layers: top,
            ..p
        };
        assert!(err(&bytes, n, dim, &fewer_layers).contains("top layer"));
        let edit = |at: usize, value: &[u8]| {
            let mut b = bytes.clone();
            b[at..at + value.len()].copy_from_slice(value);
            b
        };
        assert!(err(&edit(0, b"X"), n, dim, &p).contains("magic"));
        // A level above the top layer.
        let e = err(&edit(GRAPH_HEADER_LEN, &[200]), n, dim, &p);
        assert!(e.contains("point 0 is in layer 200"), "{e}");
        // An entry point out of range, then one below the top layer.
        let entry_at = GRAPH_HEADER_LEN - 4;
        let e = err(&edit(entry_at, &(n as u32).to_le_bytes()), n, dim, &p);
        assert!(e.contains("entry point") && e.contains("beyond"), "{e}");
        let low = built
            .graph
            .levels
            .iter()
            .position(|&l| l == 0)
            .expect("row") as u32;
        let e = err(&edit(entry_at, &low.to_le_bytes()), n, dim, &p);
        assert!(e.contains("entry point") && e.contains("layer 0"), "{e}");
        // Layer 0: the edge count, then the first list length, then the first
        // neighbour.
        let count_at = GRAPH_HEADER_LEN + n;
        let edges = built.graph.layers[0].neighbours.len() as u64;
        let e = err(&edit(count_at, &(edges + 1).to_le_bytes()), n, dim, &p);
        assert!(e.contains("add up"), "{e}");
        let e = err(&edit(count_at, &u64::MAX.to_le_bytes()), n, dim, &p);
        assert!(e.contains("add up"), "{e}");
        let degrees_at = count_at + 8;
        let e = err(&edit(degrees_at, &25u16.to_le_bytes()), n, dim, &p);
        assert!(e.contains("at most 24"), "{e}");
        let first = built.graph.layers[0].offsets[1];
        assert!(first >= 1);
        // One more neighbour for the first point, one fewer for the second:
        // the offsets move but still add up; the lists no longer match.
        let second = built.graph.layers[0].offsets[2] - first;
        let mut b = edit(degrees_at, &(first as u16 + 1).to_le_bytes());
        b[degrees_at + 2..degrees_at + 4].copy_from_slice(&(second as u16 - 1).to_le_bytes());
        if let Ok(stored) = StoredGraph::parse(&b, 3, n, dim, &p) {
            // Well-formed, if different: still searchable.
            let g = HnswIndex::from_stored(stored, &points, p).expect("load");
            assert!(g.search(&points[..dim], 3).len() <= 3);
        }
        let nb_at = degrees_at + 2 * n;
        let e = err(&edit(nb_at, &(n as u32).to_le_bytes()), n, dim, &p);
        assert!(e.contains("beyond the 120 points"), "{e}");
        // A neighbour on layer 1 that is not on it.
        let layer1 = &built.graph.layers[1];
        let layer1_at = nb_at + 4 * edges as usize;
        let members1 = layer1.rows.len();
        assert_eq!(
            &bytes[layer1_at..layer1_at + 4],
            &(members1 as u32).to_le_bytes()
        );
        let nb1_at = layer1_at + 4 + 4 * members1 + 8 + 2 * members1;
        let outside = (0..n as u32)
            .find(|r| layer1.rows.binary_search(r).is_err())
            .expect("a row below layer 1");
        assert!(!layer1.neighbours.is_empty());
        let e = err(&edit(nb1_at, &outside.to_le_bytes()), n, dim, &p);
        assert!(e.contains("is not on the layer"), "{e}");
        // Members of layer 1 out of order.
        if members1 >= 2 {
            let e = err(&edit(layer1_at + 4, &u32::MAX.to_le_bytes()), n, dim, &p);
            assert!(e.contains("layer 1"), "{e}");
        }
        // Embeddings of another size.
        let stored = StoredGraph::parse(&bytes, 3, n, dim, &p).expect("parse");
        let e = HnswIndex::from_stored(stored, &points[dim..], p).unwrap_err();
        assert!(matches!(e, GraphLoadError::Corrupt(_)), "{e:?}");
    }
}
