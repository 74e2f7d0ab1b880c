//! Approximate search with an `hnsw_rs` graph.
//!
//! The graph is built serially in reference row order, so the same reference
//! gives the same graph (hnsw_rs draws layers from a fixed-seed generator;
//! parallel insertion is not reproducible). Approximate neighbour distances are
//! never shorter than the exact ones, which is what lets the model re-check
//! only the patients the graph would not call supported.

use hnsw_rs::prelude::{DistL2, Hnsw};
use serde::{Deserialize, Serialize};

use super::Neighbour;

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
}

impl std::fmt::Debug for HnswIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HnswIndex")
            .field("params", &self.params)
            .field("n_points", &self.graph.get_nb_point())
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
        HnswIndex { graph, params }
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
