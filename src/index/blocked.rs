//! Exact k nearest neighbours by blocked distance products: every member's
//! list at fit (member densities), and batches of patients or calibration
//! members at assess and fit, when the embedding has too many dimensions
//! for the k-d tree to prune well.
//!
//! The members are laid out once in the k-d tree's leaf order (nearby
//! members adjacent) and cut into point blocks, each with its bounding box.
//! A block of queries against a block of points is one `f32` matrix product
//! `G = P Qᵀ` (faer); `‖p‖² − 2 p·q + ‖q‖²` bounds each squared distance up
//! to the product's rounding error, and is used only as a filter. A point
//! passes when its approximate distance could still be within the query's
//! current k-th distance, or within its support radius while the count is
//! under [`SUPPORT_CAP`] (plus that error); its distance is then computed
//! exactly as the k-d tree and the scan compute it (coordinates in order,
//! `f32`), and offered to the same k-best list and counted the same way. So
//! the results are those of [`ExactIndex::search`](super::ExactIndex::search),
//! bit for bit (property tests compare them).
//!
//! Each query's list starts from the members next to it in the leaf order
//! (its own neighbours in that order at fit, the members of the leaf it
//! falls in otherwise), searched exactly, so that its k-th distance is
//! finite before the first block. Point blocks are visited nearest box
//! first, and a block whose box lies farther than every query's current
//! k-th distance (and radius) is skipped without a product: with clustered
//! cohorts most are.
//!
//! Its cost is at most `n·d` multiply-adds per query whatever the data, the
//! tree's grows with the dimension: fit and assess time both on a few
//! queries and keep the faster (the choice changes the time only).
//!
//! Error bound. For `f32` vectors `p`, `q` of dimension `d`, any summation
//! order of the product gives `|fl(p·q) − p·q| ≤ γ_d ‖p‖‖q‖` with
//! `γ_d = d u / (1 − d u)`, `u = 2⁻²⁴`; the norms are summed in `f64`. The
//! exact pass's own squared distance `d̂` (differences, squares and `d`
//! sums in `f32`) is within `γ_{d+2} D` of the real `D`. A point with
//! `d̂ ≤ w` (the current k-th, or the radius) therefore has approximate
//! distance at most `w (1 + 2γ_{d+2}) + 2 γ_d ‖q‖ max‖p‖`, and the filter,
//! which works in `f32` (the norms rounded, the difference rounded), adds
//! `2u (max‖p‖² + ‖q‖ max‖p‖)` for those roundings; it uses twice the
//! whole margin, rounded up. A box at real squared distance `B` (computed in
//! `f64`) holds only points with `d̂ ≥ B (1 − γ_{d+2})`; a block is skipped
//! for a query only when `B (1 − 2γ_{d+2}) > w`.

use faer::{Accum, MatRef, Par};
use rayon::prelude::*;

use super::exact::{ExactResult, SUPPORT_CAP};
use super::{Neighbour, TopK, squared_distance};

/// Queries per query block.
pub const QUERY_BLOCK: usize = 128;
/// Members per point block.
const POINT_BLOCK: usize = 1024;

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

/// The members of an exact index laid out for blocked search: in the k-d
/// tree's leaf order, in point blocks with their bounding boxes. Built once
/// by [`BlockedSearch::new`]; [`BlockedSearch::all_knn`] gives every
/// member's neighbours among the others, [`BlockedSearch::search`] those of
/// outside queries, [`BlockedSearch::time_runs`] times a few members (what
/// fit weighs against the k-d tree).
#[derive(Debug)]
pub struct BlockedSearch {
    dim: usize,
    /// Member index at each position.
    order: Vec<u32>,
    /// Position of each member (the inverse of `order`).
    position: Vec<u32>,
    /// Locality key (the tree's leaf) at each position, ascending.
    keys: Vec<u32>,
    /// Members in `order`, row-major `n × dim`.
    rows: Vec<f32>,
    /// `‖p‖²` (summed in `f64`) rounded to `f32` (relative error at most [`UNIT`]).
    norm_sq32: Vec<f32>,
    /// First position of each point block.
    starts: Vec<usize>,
    point_block: usize,
    /// Largest `‖p‖` of each point block.
    max_norm: Vec<f64>,
    /// Each point block's bounding box: `dim` lows, then `dim` highs.
    boxes: Vec<f32>,
}

/// One batch of queries for the core search.
struct Batch<'q> {
    /// Row-major `ql × dim`.
    rows: &'q [f32],
    /// Position in the order each query's list is seeded around.
    anchors: &'q [usize],
    /// The member position each query skips (none when empty).
    skip: &'q [Option<usize>],
    /// Support radius of each query (counted up to [`SUPPORT_CAP`]).
    radii: Option<&'q [f32]>,
}

impl BlockedSearch {
    /// The members of `points` (row-major, `dim` columns), given as
    /// `(locality key, index)` pairs sorted ascending (the key: the leaf
    /// [`ExactIndex::locality_key`](super::ExactIndex::locality_key) gives).
    /// `None` when a coordinate is not finite (the filter's bound needs
    /// finite norms) or `dim` is 0: the caller searches the tree instead.
    pub fn new(points: &[f32], dim: usize, ordered: &[(u32, u32)]) -> Option<Self> {
        Self::with_point_block(points, dim, ordered, POINT_BLOCK)
    }

    fn with_point_block(
        points: &[f32],
        dim: usize,
        ordered: &[(u32, u32)],
        point_block: usize,
    ) -> Option<Self> {
        if dim == 0 || points.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let n = ordered.len();
        let point_block = point_block.max(1);
        let order: Vec<u32> = ordered.iter().map(|&(_, i)| i).collect();
        let keys: Vec<u32> = ordered.iter().map(|&(k, _)| k).collect();
        let mut position = vec![0u32; n];
        for (pos, &i) in order.iter().enumerate() {
            *position.get_mut(i as usize)? = pos as u32;
        }
        let mut rows = Vec::with_capacity(n * dim);
        for &i in &order {
            rows.extend_from_slice(&points[i as usize * dim..(i as usize + 1) * dim]);
        }
        let norm_sq: Vec<f64> = rows
            .chunks_exact(dim)
            .map(|r| r.iter().map(|&v| f64::from(v) * f64::from(v)).sum())
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
        let mut boxes = Vec::with_capacity(starts.len() * 2 * dim);
        for &s in &starts {
            let block = &rows[s * dim..(s + point_block).min(n) * dim];
            let mut lo = vec![f32::INFINITY; dim];
            let mut hi = vec![f32::NEG_INFINITY; dim];
            for r in block.chunks_exact(dim) {
                for ((l, h), &v) in lo.iter_mut().zip(hi.iter_mut()).zip(r) {
                    *l = l.min(v);
                    *h = h.max(v);
                }
            }
            boxes.extend_from_slice(&lo);
            boxes.extend_from_slice(&hi);
        }
        let norm_sq32 = norm_sq.iter().map(|&v| v as f32).collect();
        Some(BlockedSearch {
            dim,
            order,
            position,
            keys,
            rows,
            norm_sq32,
            starts,
            point_block,
            max_norm,
            boxes,
        })
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether there are no members.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The position in the order around which a query with locality key
    /// `key` is seeded (the first member of its leaf or after).
    pub fn anchor(&self, key: u32) -> usize {
        self.keys.partition_point(|&k| k < key)
    }

    /// How long searching the members at positions `start..start + len`
    /// of each run (`k` neighbours each, one batch per run) takes on the
    /// calling thread; `None` as soon as it exceeds `limit`.
    pub fn time_runs(
        &self,
        k: usize,
        runs: &[(usize, usize)],
        limit: std::time::Duration,
    ) -> Option<std::time::Duration> {
        let t = std::time::Instant::now();
        for &(start, len) in runs {
            let start = start.min(self.order.len());
            let len = len.min(self.order.len() - start).min(QUERY_BLOCK);
            let mut out = vec![BLANK; len * k];
            let anchors: Vec<usize> = (start..start + len).collect();
            let skip: Vec<Option<usize>> = anchors.iter().copied().map(Some).collect();
            let batch = Batch {
                rows: &self.rows[start * self.dim..(start + len) * self.dim],
                anchors: &anchors,
                skip: &skip,
                radii: None,
            };
            self.search_batch(k, &batch, &mut out, &mut []);
            if t.elapsed() >= limit {
                return None;
            }
        }
        Some(t.elapsed())
    }

    /// Each member with its `k` nearest other members: row `pos` of the
    /// result (`k` entries, ascending distance, ties by index) belongs to
    /// member `order[pos]` (the order given to [`BlockedSearch::new`]);
    /// rows hold fewer than `k` real entries (the rest with `NaN` distances)
    /// only when there are not `k` other members. `on_block(m)` is called
    /// before each block of `m` queries is searched.
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
                let anchors: Vec<usize> = (q0..q0 + ql).collect();
                let skip: Vec<Option<usize>> = anchors.iter().copied().map(Some).collect();
                let batch = Batch {
                    rows: &self.rows[q0 * self.dim..(q0 + ql) * self.dim],
                    anchors: &anchors,
                    skip: &skip,
                    radii: None,
                };
                self.search_batch(k, &batch, out, &mut []);
            });
        out
    }

    /// The `k` nearest members of each query (row-major `queries`, finite),
    /// and the number within its radius (`radii`, counted up to
    /// [`SUPPORT_CAP`]): what [`ExactIndex::search`](super::ExactIndex::search)
    /// returns for each, bit for bit. `anchors` are
    /// [`BlockedSearch::anchor`] of each query's locality key; queries near
    /// each other in that order search fastest together. Runs on the
    /// calling thread.
    pub fn search(
        &self,
        queries: &[f32],
        anchors: &[usize],
        k: usize,
        radii: Option<&[f32]>,
    ) -> Vec<ExactResult> {
        self.search_skipping(queries, anchors, &[], k, radii)
    }

    /// [`BlockedSearch::search`], query `i` leaving member `skips[i]` out
    /// (as [`ExactIndex::search`](super::ExactIndex::search)'s `skip`; an
    /// empty `skips` skips none). A query that skips a member is best
    /// anchored at its position ([`BlockedSearch::position_of`]).
    ///
    /// # Panics
    /// If a skipped index is not a member (a caller bug).
    pub fn search_skipping(
        &self,
        queries: &[f32],
        anchors: &[usize],
        skips: &[Option<u32>],
        k: usize,
        radii: Option<&[f32]>,
    ) -> Vec<ExactResult> {
        let dim = self.dim;
        let skip: Vec<Option<usize>> = skips
            .iter()
            .map(|s| s.map(|i| self.position[i as usize] as usize))
            .collect();
        let m = anchors.len();
        let mut out = Vec::with_capacity(m);
        for b0 in (0..m).step_by(QUERY_BLOCK) {
            let ql = QUERY_BLOCK.min(m - b0);
            let mut nb = vec![BLANK; ql * k];
            let mut within = vec![0u32; if radii.is_some() { ql } else { 0 }];
            let batch = Batch {
                rows: &queries[b0 * dim..(b0 + ql) * dim],
                anchors: &anchors[b0..b0 + ql],
                skip: skip.get(b0..b0 + ql).unwrap_or(&[]),
                radii: radii.map(|r| &r[b0..b0 + ql]),
            };
            self.search_batch(k, &batch, &mut nb, &mut within);
            for qi in 0..ql {
                let neighbours = nb[qi * k..(qi + 1) * k]
                    .iter()
                    .copied()
                    .filter(|x| !x.distance.is_nan())
                    .collect();
                out.push(ExactResult {
                    neighbours,
                    within: within.get(qi).copied().unwrap_or(0),
                });
            }
        }
        out
    }

    /// The position of member `i` in the order.
    ///
    /// # Panics
    /// If `i` is not a member (a caller bug).
    pub fn position_of(&self, i: u32) -> usize {
        self.position[i as usize] as usize
    }

    fn row(&self, pos: usize) -> &[f32] {
        &self.rows[pos * self.dim..(pos + 1) * self.dim]
    }

    /// Squared distance from `q` to point block `b`'s box, in `f64`.
    fn box_distance_sq(&self, b: usize, q: &[f32]) -> f64 {
        self.box_gap_sq(b, q, q)
    }

    /// Squared distance from the box `[lo, hi]` to point block `b`'s box,
    /// in `f64`: a lower bound on the distance of any point of the one to
    /// any point of the other.
    fn box_gap_sq(&self, b: usize, lo_q: &[f32], hi_q: &[f32]) -> f64 {
        let dim = self.dim;
        let lo = &self.boxes[b * 2 * dim..b * 2 * dim + dim];
        let hi = &self.boxes[b * 2 * dim + dim..(b + 1) * 2 * dim];
        let mut s = 0.0f64;
        for (((&l, &h), &ql), &qh) in lo.iter().zip(hi).zip(lo_q).zip(hi_q) {
            let gap = (f64::from(l) - f64::from(qh))
                .max(f64::from(ql) - f64::from(h))
                .max(0.0);
            s += gap * gap;
        }
        s
    }

    /// Lists (and radius counts) of one batch of queries, written to `out`
    /// (`k` per query) and `within` (one per query, when radii are given).
    fn search_batch(&self, k: usize, batch: &Batch<'_>, out: &mut [Neighbour], within: &mut [u32]) {
        let n = self.order.len();
        let dim = self.dim;
        let ql = batch.anchors.len();
        if k == 0 || n == 0 || ql == 0 {
            return;
        }
        let (g_dot, g_own) = (gamma(dim), gamma(dim + 2));
        let query = |qi: usize| &batch.rows[qi * dim..(qi + 1) * dim];
        let own = |qi: usize| batch.skip.get(qi).copied().flatten();
        let r_sq = |qi: usize| batch.radii.map(|r| r[qi] * r[qi]);
        let mut count = vec![0u32; ql];
        // Each query's list starts from the members next to its anchor in
        // the order (positions `window`), searched exactly, so that its k-th
        // distance is finite before the first block; the blocks skip them.
        let window = |anchor: usize| {
            let w0 = anchor
                .saturating_sub(k.div_ceil(2))
                .min(n.saturating_sub(k + 1));
            w0..(w0 + k + 1).min(n)
        };
        let mut tops: Vec<TopK> = (0..ql)
            .map(|qi| {
                let mut top = TopK::new(k);
                for ppos in window(batch.anchors[qi]) {
                    if Some(ppos) != own(qi) {
                        let d = squared_distance(self.row(ppos), query(qi));
                        if r_sq(qi).is_some_and(|r| d <= r) && count[qi] < SUPPORT_CAP {
                            count[qi] += 1;
                        }
                        top.offer(d, self.order[ppos]);
                    }
                }
                top
            })
            .collect();
        let norm_q: Vec<f64> = (0..ql)
            .map(|qi| query(qi).iter().map(|&v| f64::from(v) * f64::from(v)).sum())
            .collect();
        // Blocks visited nearest first to the box of the batch's queries
        // (a lower bound on every query's distance to the block).
        let nb = self.starts.len();
        let mut q_lo = vec![f32::INFINITY; dim];
        let mut q_hi = vec![f32::NEG_INFINITY; dim];
        for qi in 0..ql {
            for ((l, h), &v) in q_lo.iter_mut().zip(q_hi.iter_mut()).zip(query(qi)) {
                *l = l.min(v);
                *h = h.max(v);
            }
        }
        let batch_sq: Vec<f64> = (0..nb).map(|b| self.box_gap_sq(b, &q_lo, &q_hi)).collect();
        let home = batch.anchors[0] / self.point_block;
        let mut visit: Vec<usize> = (0..nb).collect();
        visit.sort_by(|&a, &b| {
            batch_sq[a]
                .total_cmp(&batch_sq[b])
                .then(a.abs_diff(home).cmp(&b.abs_diff(home)))
                .then(a.cmp(&b))
        });
        // What each query still needs: its k-th distance, or its radius
        // while the count is under the cap.
        let reach = |top: &TopK, qi: usize, c: u32| -> f64 {
            let w = f64::from(top.worst());
            match r_sq(qi) {
                Some(r) if c < SUPPORT_CAP => w.max(f64::from(r)),
                _ => w,
            }
        };
        let shrink = 1.0 - 2.0 * g_own;
        let mut active: Vec<usize> = Vec::with_capacity(ql);
        let mut gathered: Vec<f32> = Vec::new();
        let mut g = vec![0.0f32; self.point_block.min(n) * ql];
        for b in visit {
            // Blocks come nearest first: once one lies beyond every query's
            // reach, so do the rest.
            let farthest = (0..ql).fold(0.0f64, |m, qi| m.max(reach(&tops[qi], qi, count[qi])));
            if batch_sq[b] * shrink > farthest {
                break;
            }
            active.clear();
            active.extend((0..ql).filter(|&qi| {
                self.box_distance_sq(b, query(qi)) * shrink <= reach(&tops[qi], qi, count[qi])
            }));
            if active.is_empty() {
                continue;
            }
            let p0 = self.starts[b];
            let pl = self.point_block.min(n - p0);
            let na = active.len();
            let q_rows: &[f32] = if na == ql {
                batch.rows
            } else {
                gathered.clear();
                for &qi in &active {
                    gathered.extend_from_slice(query(qi));
                }
                &gathered
            };
            let gv = faer::MatMut::from_column_major_slice_mut(&mut g[..pl * na], pl, na);
            faer::linalg::matmul::matmul(
                gv,
                Accum::Replace,
                MatRef::from_row_major_slice(&self.rows[p0 * dim..(p0 + pl) * dim], pl, dim),
                MatRef::from_row_major_slice(q_rows, na, dim).transpose(),
                1.0f32,
                Par::Seq,
            );
            crate::cpu::clear_upper_vector_state();
            let np = &self.norm_sq32[p0..p0 + pl];
            let m = self.max_norm[b];
            for (ai, &qi) in active.iter().enumerate() {
                let top = &mut tops[qi];
                let w = reach(top, qi, count[qi]);
                let nq = norm_q[qi];
                let q = nq.sqrt();
                // Candidates: fl(‖p‖² − 2 g) ≤ limit (the bound of the
                // module docs, with the f32 rounding of ‖p‖² and of the
                // difference, margins doubled, rounded up).
                let limit = if w.is_finite() {
                    let bound = w * (1.0 + 4.0 * g_own)
                        + 4.0 * g_dot * q * m
                        + 4.0 * UNIT * (m * m + q * m)
                        - nq;
                    (bound as f32).next_up()
                } else {
                    f32::INFINITY
                };
                let col = &g[ai * pl..(ai + 1) * pl];
                let qv = query(qi);
                let seeded = window(batch.anchors[qi]);
                let own_pos = own(qi);
                let r = r_sq(qi);
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
                            if Some(ppos) == own_pos || seeded.contains(&ppos) {
                                continue;
                            }
                            let d = squared_distance(self.row(ppos), qv);
                            if r.is_some_and(|r| d <= r) && count[qi] < SUPPORT_CAP {
                                count[qi] += 1;
                            }
                            top.offer(d, self.order[ppos]);
                        }
                    }
                }
            }
        }
        for (qi, top) in tops.into_iter().enumerate() {
            let nb = top.into_neighbours();
            out[qi * k..qi * k + nb.len()].copy_from_slice(&nb);
        }
        for (w, c) in within.iter_mut().zip(count) {
            *w = c;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::ExactIndex;
    use proptest::prelude::*;

    /// A seeded coordinate of spread `scale`: an integer on the grid (ties
    /// and duplicates), otherwise offset from the origin (large norms, so
    /// the filter's rounding margin matters).
    fn coordinate(rng: &mut crate::rng::SplitMix64, scale: f64, grid: bool) -> f32 {
        let v = scale * rng.normal();
        if grid {
            v.round() as f32
        } else {
            (v + 40.0) as f32
        }
    }

    /// Seeded points (integer-valued on a grid: ties and duplicates) and an
    /// order: shuffled, or sorted by the first coordinate (so point blocks
    /// have narrow boxes and get skipped).
    fn cohort(
        n: usize,
        dim: usize,
        grid: bool,
        sorted: bool,
        seed: u64,
    ) -> (Vec<f32>, Vec<(u32, u32)>) {
        let mut rng = crate::rng::SplitMix64::new(seed);
        let points: Vec<f32> = (0..n * dim)
            .map(|_| coordinate(&mut rng, 3.0, grid))
            .collect();
        let mut ids: Vec<u32> = (0..n as u32).collect();
        rng.shuffle(&mut ids);
        if sorted {
            ids.sort_by(|&a, &b| {
                points[a as usize * dim]
                    .total_cmp(&points[b as usize * dim])
                    .then(a.cmp(&b))
            });
        }
        let ordered = ids
            .iter()
            .enumerate()
            .map(|(pos, &i)| (pos as u32, i))
            .collect();
        (points, ordered)
    }

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
            sorted in prop::bool::ANY,
            seed in 0u64..1_000_000,
            qb in 1usize..40,
            pb in 1usize..90,
        ) {
            let (points, ordered) = cohort(n, dim, grid, sorted, seed);
            let found = BlockedSearch::with_point_block(&points, dim, &ordered, pb)
                .unwrap()
                .all_knn_in(k, qb, &|_| {});
            let exact = ExactIndex::new(points.clone(), dim);
            for (pos, &(_, i)) in ordered.iter().enumerate() {
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

        /// Outside queries (near the members, far from them, on the grid)
        /// and members skipping themselves get the neighbours and the
        /// radius count of an exact search, bit for bit, whatever their
        /// anchors.
        #[test]
        fn blocked_queries_equal_exact_search(
            n in 1usize..300,
            dim in 1usize..12,
            k in 1usize..12,
            grid in prop::bool::ANY,
            sorted in prop::bool::ANY,
            seed in 0u64..1_000_000,
            m in 1usize..200,
            pb in 1usize..90,
            radius in 0.0f32..12.0,
            spread in 0.5f64..20.0,
        ) {
            let (points, ordered) = cohort(n, dim, grid, sorted, seed);
            let blocked = BlockedSearch::with_point_block(&points, dim, &ordered, pb).unwrap();
            let mut rng = crate::rng::SplitMix64::new(seed ^ 0x5eed);
            let mut queries: Vec<f32> = (0..m * dim).map(|_| coordinate(&mut rng, spread, grid)).collect();
            let mut anchors: Vec<usize> = (0..m).map(|_| rng.below(n)).collect();
            // Every third query is a member searched among the others.
            let skips: Vec<Option<u32>> = (0..m)
                .map(|qi| {
                    (qi % 3 == 0).then(|| {
                        let j = rng.below(n);
                        queries[qi * dim..(qi + 1) * dim].copy_from_slice(&points[j * dim..(j + 1) * dim]);
                        if qi % 2 == 0 {
                            anchors[qi] = blocked.position_of(j as u32);
                        }
                        j as u32
                    })
                })
                .collect();
            let radii: Vec<f32> = (0..m).map(|i| if i % 7 == 3 { f32::MAX } else { radius }).collect();
            let found = blocked.search_skipping(&queries, &anchors, &skips, k, Some(&radii));
            let exact = ExactIndex::new(points.clone(), dim);
            for (qi, got) in found.iter().enumerate() {
                let want = exact.search(&queries[qi * dim..(qi + 1) * dim], k, skips[qi], Some(radii[qi]));
                prop_assert_eq!(got.within, want.within, "query {}", qi);
                prop_assert_eq!(got.neighbours.len(), want.neighbours.len());
                for (a, b) in got.neighbours.iter().zip(&want.neighbours) {
                    prop_assert_eq!(a.index, b.index, "query {}", qi);
                    prop_assert_eq!(a.distance.to_bits(), b.distance.to_bits());
                }
            }
        }
    }

    #[test]
    fn non_finite_points_are_left_to_the_tree() {
        let points = vec![0.0, 1.0, f32::NAN, 2.0];
        assert!(BlockedSearch::new(&points, 1, &[(0, 0), (0, 1), (0, 2), (0, 3)]).is_none());
    }
}
