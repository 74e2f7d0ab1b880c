//! Nearest-neighbour search over the reference embeddings.
//!
//! Fourth step of the pipeline. [`ExactIndex`] scans every member (blocked,
//! parallel over queries); [`HnswIndex`] searches an HNSW graph (built by
//! nof1's own parallel builder, or by `hnsw_rs`, kept as nof1's own arrays)
//! for large cohorts. Both return [`Neighbour`]s ordered by increasing distance, ties
//! broken by increasing reference index. Distances are Euclidean (not squared).

pub mod blocked;
mod build;
pub mod check;
pub mod exact;
mod graph;
pub mod hnsw;
pub mod kdtree;
mod section;

pub use exact::ExactIndex;
pub use hnsw::HnswIndex;
pub use kdtree::TreeLayout;

use serde::{Deserialize, Serialize};

/// Squared Euclidean distance between two points, each coordinate's
/// difference squared and summed in coordinate order in `f32`: the
/// arithmetic of every exact search here (the scan, the k-d tree's leaves,
/// the blocked re-check, the graph), so that their distances agree bit for
/// bit.
#[inline]
pub(crate) fn squared_distance(point: &[f32], query: &[f32]) -> f32 {
    let mut d = 0.0f32;
    for (a, b) in point.iter().zip(query) {
        let t = a - b;
        d += t * t;
    }
    d
}

/// One reference member near a query.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Neighbour {
    /// Row index of the member in the reference.
    pub index: u32,
    /// Euclidean distance in the embedding.
    pub distance: f32,
}

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
            max_connections: 16,
            ef_construction: 100,
            ef_search: 32,
            max_layers: 16,
        }
    }
}

/// Which search structure a model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum IndexKind {
    /// Exact scan.
    Exact,
    /// `hnsw_rs` graph, with exact re-check of every non-supported patient.
    Hnsw,
    /// nof1's own HNSW graph ([`HnswIndex::build_own`]): calibration members
    /// and patients are scored by the same graph search, so the conformal
    /// guarantee holds for that score; no exact re-check.
    Graph,
}

impl std::fmt::Display for IndexKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IndexKind::Exact => "exact",
            IndexKind::Hnsw => "hnsw",
            IndexKind::Graph => "graph",
        })
    }
}

/// Keeps the `k` smallest `(distance_sq, index)` pairs seen, sorted ascending.
/// Offered in increasing index order, equal distances keep the lower index.
#[derive(Debug, Clone)]
pub(crate) struct TopK {
    k: usize,
    items: Vec<(f32, u32)>,
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        TopK {
            k,
            items: Vec::with_capacity(k + 1),
        }
    }

    /// The current k-th smallest squared distance (infinity until full).
    #[inline]
    pub(crate) fn worst(&self) -> f32 {
        if self.items.len() < self.k {
            f32::INFINITY
        } else {
            self.items[self.k - 1].0
        }
    }

    /// Whether `(d_sq, index)` would enter the list (lexicographic order).
    #[inline]
    fn admits(&self, d_sq: f32, index: u32) -> bool {
        if self.k == 0 {
            return false;
        }
        if self.items.len() < self.k {
            return true;
        }
        let (wd, wi) = self.items[self.k - 1];
        d_sq < wd || (d_sq == wd && index < wi)
    }

    #[inline]
    pub(crate) fn offer(&mut self, d_sq: f32, index: u32) {
        if !self.admits(d_sq, index) {
            return;
        }
        let pos = self
            .items
            .partition_point(|&(d, i)| d < d_sq || (d == d_sq && i < index));
        self.items.insert(pos, (d_sq, index));
        if self.items.len() > self.k {
            self.items.pop();
        }
    }

    pub(crate) fn into_neighbours(self) -> Vec<Neighbour> {
        self.items
            .into_iter()
            .map(|(d, i)| Neighbour {
                index: i,
                distance: d.max(0.0).sqrt(),
            })
            .collect()
    }
}
