//! Exact nearest-neighbour search: a k-d tree in low dimension, a full scan otherwise.

use std::sync::Arc;

use super::kdtree::{KdTree, TreeLayout};
use super::{Neighbour, TopK};

/// Largest dimension searched with the k-d tree (above it, a scan is faster).
pub const KD_TREE_MAX_DIM: usize = 64;
/// Radius counts stop at this many members: `support` reports `min(count, SUPPORT_CAP)`.
pub const SUPPORT_CAP: u32 = 100;

/// Smallest number of points worth a k-d tree.
pub const KD_TREE_MIN_POINTS: usize = 512;

/// Exact search over row-major `n × dim` `f32` points. Results do not depend
/// on whether the tree or the scan answers: both compute the same `f32`
/// distances and break ties by the lower index.
#[derive(Debug, Clone, PartialEq)]
pub struct ExactIndex {
    /// Shared with the model's embeddings when they are the search
    /// coordinates (one copy in memory).
    points: Arc<Vec<f32>>,
    dim: usize,
    tree: Option<KdTree>,
}

/// Result of an exact query: the neighbours and how many points lie within a radius.
#[derive(Debug, Clone, PartialEq)]
pub struct ExactResult {
    /// The `k` nearest points, ascending by distance then index.
    pub neighbours: Vec<Neighbour>,
    /// Number of points at distance `<= radius` (if a radius was given),
    /// counted up to [`SUPPORT_CAP`].
    pub within: u32,
}

impl ExactIndex {
    /// Indexes row-major points of dimension `dim` (a `Vec<f32>`, or an
    /// `Arc<Vec<f32>>` shared with their owner).
    ///
    /// # Panics
    /// If `points.len()` is not a multiple of `dim` (a caller bug).
    pub fn new(points: impl Into<Arc<Vec<f32>>>, dim: usize) -> Self {
        let points = points.into();
        assert!(dim > 0 && points.len().is_multiple_of(dim), "points shape");
        let n = points.len() / dim;
        let tree = Self::uses_tree(n, dim).then(|| KdTree::build(&points, dim));
        ExactIndex { points, dim, tree }
    }

    /// [`ExactIndex::new`] with the tree restored from a stored layout
    /// instead of built, when the index has a tree and a layout is given.
    ///
    /// # Errors
    /// The layout's message when it does not fit the points
    /// ([`KdTree::from_layout`]), or when one is given for an index without
    /// a tree.
    ///
    /// # Panics
    /// As [`ExactIndex::new`].
    pub fn with_layout(
        points: impl Into<Arc<Vec<f32>>>,
        dim: usize,
        layout: Option<TreeLayout>,
    ) -> Result<Self, String> {
        let points = points.into();
        let Some(layout) = layout else {
            return Ok(Self::new(points, dim));
        };
        assert!(dim > 0 && points.len().is_multiple_of(dim), "points shape");
        if !Self::uses_tree(points.len() / dim, dim) {
            return Err(format!(
                "a tree for {} points of dimension {dim}, which are scanned",
                points.len() / dim
            ));
        }
        let tree = KdTree::from_layout(&points, dim, layout)?;
        Ok(ExactIndex {
            points,
            dim,
            tree: Some(tree),
        })
    }

    /// Whether `n` points of dimension `dim` are searched with a tree
    /// (otherwise with a full scan).
    pub fn uses_tree(n: usize, dim: usize) -> bool {
        dim <= KD_TREE_MAX_DIM && n >= KD_TREE_MIN_POINTS
    }

    /// Whether this index searches a k-d tree (else it scans).
    pub fn has_tree(&self) -> bool {
        self.tree.is_some()
    }

    /// The tree's structure, for storing (`None` when the index scans).
    pub fn tree_layout(&self) -> Option<TreeLayout> {
        self.tree.as_ref().map(KdTree::layout)
    }

    /// An index that always scans (for tests and benchmarks).
    ///
    /// # Panics
    /// As [`ExactIndex::new`].
    pub fn new_scan(points: impl Into<Arc<Vec<f32>>>, dim: usize) -> Self {
        let points = points.into();
        assert!(dim > 0 && points.len().is_multiple_of(dim), "points shape");
        ExactIndex {
            points,
            dim,
            tree: None,
        }
    }

    /// Number of indexed points.
    pub fn len(&self) -> usize {
        self.points.len() / self.dim
    }

    /// Whether the index is empty.
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }

    /// Dimension of the points.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The point with row index `i`.
    pub fn point(&self, i: usize) -> &[f32] {
        &self.points[i * self.dim..(i + 1) * self.dim]
    }

    /// All points, row-major.
    pub fn points(&self) -> &[f32] {
        &self.points
    }

    /// The points' shared allocation (the model's embeddings when they are
    /// the search coordinates).
    #[cfg(test)]
    pub(crate) fn shared_points(&self) -> &Arc<Vec<f32>> {
        &self.points
    }

    /// A key that sorts queries by where they fall among the points (0 when
    /// the index scans): assessing queries in key order is faster, results
    /// are the same in any order.
    pub fn locality_key(&self, query: &[f32]) -> u32 {
        self.tree.as_ref().map_or(0, |t| t.leaf_of(query))
    }

    /// Every point as `(locality key, index)`, sorted ascending: the k-d
    /// tree's leaves in order, read off the tree (`None` when the index
    /// scans). A point's key here is the leaf that holds it, which is the
    /// one [`ExactIndex::locality_key`] gives it unless it lies on a cut.
    pub fn leaf_order(&self) -> Option<Vec<(u32, u32)>> {
        let mut out = self.tree.as_ref()?.leaf_order();
        if !out.is_sorted() {
            out.sort_unstable();
        }
        Some(out)
    }

    /// The cost of finding the `k` nearest points to `query` (skipping
    /// `skip`), as the number of points exact search must look at: the
    /// points of the tree's leaves within reach of the `k`-th distance, or
    /// every point when the index scans. Deterministic (fit decides by it).
    pub fn search_cost(&self, query: &[f32], k: usize, skip: Option<u32>) -> u64 {
        let Some(tree) = &self.tree else {
            return self.len() as u64;
        };
        let found = self.search(query, k, skip, None).neighbours;
        match found.last() {
            Some(nb) if found.len() == k => {
                let r = f64::from(nb.distance);
                tree.points_within_reach(query, r * r)
            }
            _ => self.len() as u64,
        }
    }

    /// The `k` nearest points to `query` (ascending distance, ties by index),
    /// skipping the point `skip` if given, and the count of points within `radius`.
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        skip: Option<u32>,
        radius: Option<f32>,
    ) -> ExactResult {
        if let Some(tree) = &self.tree {
            let mut top = TopK::new(k);
            // One more than the cap, so that removing `skip` stays exact.
            let (r_sq, cap) = radius.map_or((0.0, 0), |r| (r * r, SUPPORT_CAP + 1));
            let count = tree.knn_count(query, &mut top, skip, r_sq, cap);
            let within = match radius {
                Some(r) => {
                    let mut c = count;
                    if let Some(s) = skip
                        && super::squared_distance(self.point(s as usize), query) <= r * r
                    {
                        c = c.saturating_sub(1);
                    }
                    c.min(SUPPORT_CAP)
                }
                None => 0,
            };
            return ExactResult {
                neighbours: top.into_neighbours(),
                within,
            };
        }
        let dim = self.dim;
        let mut top = TopK::new(k);
        let r_sq = radius.map_or(f32::NEG_INFINITY, |r| r * r);
        let mut within = 0u32;
        for (i, p) in self.points.chunks_exact(dim).enumerate() {
            let d = super::squared_distance(p, query);
            if Some(i as u32) == skip {
                continue;
            }
            if d <= r_sq {
                within += 1;
            }
            if d < top.worst() {
                top.offer(d, i as u32);
            }
        }
        ExactResult {
            neighbours: top.into_neighbours(),
            within: within.min(SUPPORT_CAP),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The cost fit decides the densities by is at least the number of
        /// points within the query's k-th distance (their leaves are within
        /// reach) and at most every point; a scanning index costs every point.
        #[test]
        fn search_cost_covers_the_points_within_reach(
            seed in 0u64..1000,
            n in 600usize..3000,
            dim in 1usize..12,
            k in 1usize..20,
        ) {
            let mut rng = crate::rng::SplitMix64::new(seed);
            let points: Vec<f32> = (0..n * dim).map(|_| rng.normal() as f32).collect();
            let index = ExactIndex::new(points.clone(), dim);
            prop_assert!(index.has_tree());
            let q: Vec<f32> = (0..dim).map(|_| (1.5 * rng.normal()) as f32).collect();
            let cost = index.search_cost(&q, k, None);
            let kth = index.search(&q, k, None, None).neighbours[k - 1].distance;
            let r_sq = f64::from(kth) * f64::from(kth) * (1.0 - 1e-5);
            let within = points
                .chunks_exact(dim)
                .filter(|p| f64::from(crate::index::squared_distance(p, &q)) <= r_sq)
                .count() as u64;
            prop_assert!(within <= cost && cost <= n as u64, "{within} {cost} {n}");
            let scan = ExactIndex::new_scan(points, dim);
            prop_assert_eq!(scan.search_cost(&q, k, None), n as u64);
        }
    }

    #[test]
    fn finds_nearest_with_ties_by_index() {
        let idx = ExactIndex::new(vec![0.0, 0.0, 1.0, 0.0, -1.0, 0.0, 5.0, 5.0], 2);
        let r = idx.search(&[0.0, 0.0], 3, None, Some(1.0));
        let got: Vec<u32> = r.neighbours.iter().map(|n| n.index).collect();
        assert_eq!(got, vec![0, 1, 2]);
        assert_eq!(r.within, 3);
        let r = idx.search(&[0.0, 0.0], 2, Some(0), None);
        assert_eq!(r.neighbours[0].index, 1);
        assert_eq!(r.neighbours[0].distance, 1.0);
    }
}
