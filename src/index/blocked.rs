//! Every member's exact k nearest neighbours by blocked distance products:
//! the all-kNN pass of fit (member densities) when the embedding has too
//! many dimensions for the k-d tree to prune well.
//!
//! A block of members (the queries) against a block of members (the points)
//! is one `f32` matrix product `G = P Qᵀ` (faer); `‖p‖² − 2 p·q + ‖q‖²`
//! bounds each squared distance up to the product's rounding error, and is
//! used only as a filter. A point passes when its approximate distance could
//! still be within the query's current k-th distance (plus that error); its
//! distance is then computed exactly as the k-d tree and the scan compute it
//! (coordinates in order, `f32`), and offered to the same k-best list. So
//! the lists are those of [`ExactIndex::search`](super::ExactIndex::search)
//! with the member itself skipped, bit for bit (a property test compares
//! them). Each query's list starts from its neighbours in the search order
//! (the k-d tree's leaf order, so near in space), and the point blocks
//! nearest in that order are filtered first, so the k-th distance is tight
//! early and few points pass.
//!
//! Its cost is `n²·d` multiply-adds whatever the data, the tree's grows
//! with the dimension: fit times both on a few members and keeps the faster
//! (`blocked_search_if_faster` in `src/model/fit.rs`; the members are laid
//! out once for both).
//!
//! Error bound. For `f32` vectors `p`, `q` of dimension `d`, any summation
//! order of the product gives `|fl(p·q) − p·q| ≤ γ_d ‖p‖‖q‖` with
//! `γ_d = d u / (1 − d u)`, `u = 2⁻²⁴`; the norms are summed in `f64`. The
//! exact pass's own squared distance `d̂` (differences, squares and `d`
//! sums in `f32`) is within `γ_{d+2} D` of the real `D`. A point with
//! `d̂ ≤ w` (the current k-th) therefore has approximate distance at most
//! `w (1 + 2γ_{d+2}) + 2 γ_d ‖q‖ max‖p‖`, and the filter, which works in
//! `f32` (the norms rounded, the difference rounded), adds
//! `2u (max‖p‖² + ‖q‖ max‖p‖)` for those roundings; it uses twice the
//! whole margin, rounded up.

use faer::{Accum, Mat, Par};
use rayon::prelude::*;

use super::{Neighbour, TopK, squared_distance};

/// Members per query block.
const QUERY_BLOCK: usize = 128;
/// Members per point block.
const POINT_BLOCK: usize = 2048;

/// An empty slot of a neighbour list.
const BLANK: Neighbour = Neighbour {
    index: 0,
    distance: f32::NAN,
};

/// Unit roundoff of `f32`, `u = 2⁻²⁴`.
const UNIT: f64 = f32::EPSILON as f64 / 2.0;

/// `γ_m = m u / (1 − m u)` for `f32`.
fn gamma(m: usize) -> f64 {
    let mu = m as f64 * UNIT;
    mu / (1.0 - mu)
}

/// Every member's exact k nearest other members, by blocked distance
/// products over the members of `points` (row-major, `dim` columns) taken
/// in the order `order` (a permutation of their indices; nearby members
/// adjacent makes the filter tight early). Laid out once by
/// [`BlockedSearch::new`]; [`BlockedSearch::time_first`] times it on a few
/// members (what fit weighs against the k-d tree), and
/// [`BlockedSearch::all_knn`] searches them all.
pub struct BlockedSearch<'a> {
    points: &'a [f32],
    dim: usize,
    order: &'a [u32],
    /// Members in `order`, `n × dim`.
    p: Mat<f32>,
    /// `‖p‖²` in `f64`, in `order`.
    norm_sq: Vec<f64>,
    /// The same rounded to `f32` (relative error at most [`UNIT`]).
    norm_sq32: Vec<f32>,
    /// First position of each point block.
    starts: Vec<usize>,
    point_block: usize,
    /// Largest `‖p‖` of each point block.
    max_norm: Vec<f64>,
}

impl<'a> BlockedSearch<'a> {
    /// The members of `points` laid out in blocks in the order `order`.
    /// `None` when a coordinate is not finite (the filter's bound needs
    /// finite norms) or `dim` is 0: the caller searches the tree instead.
    pub fn new(points: &'a [f32], dim: usize, order: &'a [u32]) -> Option<Self> {
        Self::with_point_block(points, dim, order, POINT_BLOCK)
    }

    fn with_point_block(
        points: &'a [f32],
        dim: usize,
        order: &'a [u32],
        point_block: usize,
    ) -> Option<Self> {
        if dim == 0 || points.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let n = order.len();
        let point_block = point_block.max(1);
        let row = |pos: usize| {
            let i = order[pos] as usize;
            &points[i * dim..(i + 1) * dim]
        };
        let p = Mat::<f32>::from_fn(n, dim, |pos, d| row(pos)[d]);
        let norm_sq: Vec<f64> = (0..n)
            .map(|pos| row(pos).iter().map(|&v| f64::from(v) * f64::from(v)).sum())
            .collect();
        let starts: Vec<usize> = (0..n).step_by(point_block).collect();
        let max_norm = starts
            .iter()
            .map(|&s| {
                norm_sq[s..(s + point_block).min(n)]
                    .iter()
                    .fold(0.0f64, |m, &v| m.max(v.sqrt()))
            })
            .collect();
        let norm_sq32 = norm_sq.iter().map(|&v| v as f32).collect();
        Some(BlockedSearch {
            points,
            dim,
            order,
            p,
            norm_sq,
            norm_sq32,
            starts,
            point_block,
            max_norm,
        })
    }

    /// How long searching the first `m` members (`k` neighbours each) takes
    /// on the calling thread.
    pub fn time_first(&self, k: usize, m: usize) -> std::time::Duration {
        let m = m.min(self.order.len());
        let mut out = vec![BLANK; m * k];
        let t = std::time::Instant::now();
        self.search(k, 0, m, &mut out);
        t.elapsed()
    }

    /// Each member with its `k` nearest other members: row `pos` of the
    /// result (`k` entries, ascending distance, ties by index) belongs to
    /// member `order[pos]`; rows hold fewer than `k` real entries (the rest
    /// with `NaN` distances) only when there are not `k` other members.
    /// `on_block(m)` is called before each block of `m` queries is searched.
    pub fn all_knn(&self, k: usize, on_block: &(dyn Fn(usize) + Sync)) -> Vec<Neighbour> {
        self.all_knn_in(k, QUERY_BLOCK, on_block)
    }

    fn all_knn_in(
        &self,
        k: usize,
        query_block: usize,
        on_block: &(dyn Fn(usize) + Sync),
    ) -> Vec<Neighbour> {
        let n = self.order.len();
        let query_block = query_block.max(1);
        let mut out = vec![BLANK; n * k];
        if k == 0 {
            return out;
        }
        out.par_chunks_mut(k * query_block)
            .enumerate()
            .for_each(|(qb, out)| {
                let q0 = qb * query_block;
                let ql = query_block.min(n - q0);
                on_block(ql);
                self.search(k, q0, ql, out);
            });
        out
    }

    fn row(&self, pos: usize) -> &[f32] {
        let i = self.order[pos] as usize;
        &self.points[i * self.dim..(i + 1) * self.dim]
    }

    /// Lists of the queries at positions `q0..q0 + ql`, written to `out`
    /// (`k` per query).
    fn search(&self, k: usize, q0: usize, ql: usize, out: &mut [Neighbour]) {
        let n = self.order.len();
        let (g_dot, g_own) = (gamma(self.dim), gamma(self.dim + 2));
        // Each query's list starts from its neighbours in the search order
        // (positions `window`), searched exactly, so that its k-th distance
        // is finite before the first block is filtered; the blocks skip them.
        let window = |qpos: usize| {
            let w0 = qpos
                .saturating_sub(k.div_ceil(2))
                .min(n.saturating_sub(k + 1));
            w0..(w0 + k + 1).min(n)
        };
        let mut tops: Vec<TopK> = (0..ql)
            .map(|qi| {
                let qpos = q0 + qi;
                let mut top = TopK::new(k);
                for ppos in window(qpos) {
                    if ppos != qpos {
                        top.offer(
                            squared_distance(self.row(ppos), self.row(qpos)),
                            self.order[ppos],
                        );
                    }
                }
                top
            })
            .collect();
        // Point blocks nearest in the search order first: the k-th distances
        // shrink early and the filter passes few points after that.
        let own = q0 / self.point_block;
        let mut visit: Vec<usize> = (0..self.starts.len()).collect();
        visit.sort_by_key(|&b| (b.abs_diff(own), b));
        let mut g = vec![0.0f32; self.point_block.min(n) * ql];
        for b in visit {
            let p0 = self.starts[b];
            let pl = self.point_block.min(n - p0);
            let gv = faer::MatMut::from_column_major_slice_mut(&mut g[..pl * ql], pl, ql);
            faer::linalg::matmul::matmul(
                gv,
                Accum::Replace,
                self.p.as_ref().subrows(p0, pl),
                self.p.as_ref().subrows(q0, ql).transpose(),
                1.0f32,
                Par::Seq,
            );
            let np = &self.norm_sq32[p0..p0 + pl];
            let m = self.max_norm[b];
            for (qi, top) in tops.iter_mut().enumerate() {
                let qpos = q0 + qi;
                let worst = top.worst();
                let nq = self.norm_sq[qpos];
                let q = nq.sqrt();
                // Candidates: fl(‖p‖² − 2 g) ≤ limit (the bound of the
                // module docs, with the f32 rounding of ‖p‖² and of the
                // difference, margins doubled, rounded up).
                let limit = if worst.is_finite() {
                    let bound = f64::from(worst) * (1.0 + 4.0 * g_own)
                        + 4.0 * g_dot * q * m
                        + 4.0 * UNIT * (m * m + q * m)
                        - nq;
                    (bound as f32).next_up()
                } else {
                    f32::INFINITY
                };
                let col = &g[qi * pl..(qi + 1) * pl];
                let query = self.row(qpos);
                let seeded = window(qpos);
                // Sixteen at a time (vectorised); most chunks pass nothing.
                for (c, (gs, ns)) in col.chunks(16).zip(np.chunks(16)).enumerate() {
                    let any = gs
                        .iter()
                        .zip(ns)
                        .fold(false, |a, (&gj, &nj)| a | (nj - 2.0 * gj <= limit));
                    if !any {
                        continue;
                    }
                    for (j, (&gj, &nj)) in gs.iter().zip(ns).enumerate() {
                        if nj - 2.0 * gj <= limit {
                            let ppos = p0 + c * 16 + j;
                            if ppos == qpos || seeded.contains(&ppos) {
                                continue;
                            }
                            top.offer(squared_distance(self.row(ppos), query), self.order[ppos]);
                        }
                    }
                }
            }
        }
        for (qi, top) in tops.into_iter().enumerate() {
            let nb = top.into_neighbours();
            out[qi * k..qi * k + nb.len()].copy_from_slice(&nb);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::ExactIndex;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        /// The blocked pass gives every member the list an exact search
        /// skipping it gives, bit for bit: ties (integer coordinates,
        /// duplicates) included, with blocks smaller than the cohort.
        #[test]
        fn blocked_lists_equal_exact_search(
            n in 2usize..300,
            dim in 1usize..12,
            k in 1usize..12,
            grid in prop::bool::ANY,
            seed in 0u64..1_000_000,
            qb in 1usize..40,
            pb in 1usize..90,
        ) {
            let mut rng = crate::rng::SplitMix64::new(seed);
            let points: Vec<f32> = (0..n * dim)
                .map(|_| {
                    let v = 3.0 * rng.normal();
                    if grid { v.round() as f32 } else { (v + 40.0) as f32 }
                })
                .collect();
            let mut order: Vec<u32> = (0..n as u32).collect();
            rng.shuffle(&mut order);
            let found = BlockedSearch::with_point_block(&points, dim, &order, pb)
                .unwrap()
                .all_knn_in(k, qb, &|_| {});
            let exact = ExactIndex::new(points.clone(), dim);
            for (pos, &i) in order.iter().enumerate() {
                let want = exact.search(exact.point(i as usize), k, Some(i), None).neighbours;
                let got = &found[pos * k..pos * k + want.len()];
                prop_assert_eq!(got.len(), want.len());
                for (a, b) in got.iter().zip(&want) {
                    prop_assert_eq!(a.index, b.index, "member {} position {}", i, pos);
                    prop_assert_eq!(a.distance.to_bits(), b.distance.to_bits());
                }
                prop_assert!(found[pos * k + want.len()..(pos + 1) * k].iter().all(|x| x.distance.is_nan()));
            }
        }
    }

    #[test]
    fn non_finite_points_are_left_to_the_tree() {
        let points = vec![0.0, 1.0, f32::NAN, 2.0];
        assert!(BlockedSearch::new(&points, 1, &[0, 1, 2, 3]).is_none());
    }
}
