//! Checking an approximate index against exact search: seeded probes and
//! recall@k. Used by `fit` (the check stored in an HNSW model) and by
//! `nof1 bench run`.

use rayon::prelude::*;

use super::{ExactIndex, HnswIndex, Neighbour};
use crate::rng::SplitMix64;

/// In-distribution probes: a reference member moved by this fraction of its
/// k-distance, in a random direction.
pub const JITTER_FRACTION: f32 = 0.25;
/// Out-of-distribution probes: a member pushed this many times farther from
/// the origin of the embedding (the reference centroid: embeddings are centred).
pub const PUSH_FACTOR: f32 = 3.0;

/// Spread probes (the out-of-distribution probes of nof1's own graph): a
/// member moved, in a random direction, by between [`SPREAD_MIN`] and
/// [`SPREAD_MAX`] times its k-distance (uniformly).
pub const SPREAD_MIN: f32 = 0.5;
/// See [`SPREAD_MIN`].
pub const SPREAD_MAX: f32 = 3.0;

/// `m` seeded members (at most all of them) moved off the reference, from
/// just beside it to beyond its edge: each by a seeded multiple, between
/// [`SPREAD_MIN`] and [`SPREAD_MAX`], of its k-distance (`kdist` of its
/// row: exact, or a graph's, which is as good a scale and costs less) in a
/// random direction. Members pushed [`PUSH_FACTOR`]× outward all land where a
/// graph that hands far queries to exact search ([`HnswIndex::exact_beyond`])
/// never searches; these probes range over where it does, sparse places
/// near the reference, which is where out-of-distribution patients the
/// graph answers lie. Row-major; deterministic (the k-distances are found
/// in parallel, the draws are not).
pub fn spread_probes(
    exact: &ExactIndex,
    kdist: impl Fn(usize) -> f32 + Sync,
    m: usize,
    seed: u64,
) -> Vec<f32> {
    let dim = exact.dim();
    let (members, _) = probe_members(exact, m, seed);
    let mut rng = SplitMix64::new(seed ^ 0x5a7e_ad00);
    let moves: Vec<(usize, f32, Vec<f32>)> = members
        .iter()
        .map(|&i| {
            let f = SPREAD_MIN + (SPREAD_MAX - SPREAD_MIN) * rng.next_f64() as f32;
            let dir: Vec<f32> = (0..dim).map(|_| rng.normal() as f32).collect();
            (i, f, dir)
        })
        .collect();
    moves
        .par_iter()
        .flat_map_iter(|(i, f, dir)| {
            moved(exact.point(*i), dir, f * kdist(*i)).collect::<Vec<f32>>()
        })
        .collect()
}

/// `x` moved by `by` along the direction of `dir`.
fn moved<'a>(x: &'a [f32], dir: &'a [f32], by: f32) -> impl Iterator<Item = f32> + 'a {
    let norm = dir.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-30);
    x.iter().zip(dir).map(move |(a, d)| a + by * d / norm)
}

/// The exact distance from member `i` to its `k`-th nearest other member
/// (0 without one).
fn exact_kdist(exact: &ExactIndex, k: usize, i: usize) -> f32 {
    exact
        .search(exact.point(i), k, Some(i as u32), None)
        .neighbours
        .last()
        .map_or(0.0, |nb| nb.distance)
}

/// `m` seeded reference members (at most all of them), each probed twice:
/// moved by [`JITTER_FRACTION`] of its exact k-distance in a random direction
/// (in distribution), and pushed [`PUSH_FACTOR`]× outward (out of
/// distribution). Returns `(inside, outside)`, row-major.
pub fn probes(exact: &ExactIndex, k: usize, m: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let dim = exact.dim();
    let (members, mut rng) = probe_members(exact, m, seed);
    let mut inside = Vec::with_capacity(members.len() * dim);
    for &i in &members {
        let kdist = exact_kdist(exact, k, i);
        let dir: Vec<f32> = (0..dim).map(|_| rng.normal() as f32).collect();
        inside.extend(moved(exact.point(i), &dir, JITTER_FRACTION * kdist));
    }
    (inside, pushed(exact, &members))
}

/// The seeded probe members, and the generator as it stands after drawing them.
fn probe_members(exact: &ExactIndex, m: usize, seed: u64) -> (Vec<usize>, SplitMix64) {
    let n = exact.len();
    let mut rng = SplitMix64::new(seed ^ 0x2ec0);
    let members = (0..m.min(n)).map(|_| rng.below(n)).collect();
    (members, rng)
}

/// `members` pushed [`PUSH_FACTOR`] times outward from the origin.
fn pushed(exact: &ExactIndex, members: &[usize]) -> Vec<f32> {
    members
        .iter()
        .flat_map(|&i| exact.point(i).iter().map(|v| PUSH_FACTOR * v))
        .collect()
}

/// How many of the exact `k` nearest neighbours `got` finds (ties at the k-th
/// distance count as found).
pub fn hits(truth: &[Neighbour], got: &[Neighbour]) -> usize {
    let kth = truth.last().map_or(0.0, |nb| nb.distance);
    got.iter()
        .filter(|g| g.distance <= kth * (1.0 + 1e-6))
        .count()
        .min(truth.len())
}

/// recall@k of `graph` over `queries` (row-major): found neighbours over
/// exact neighbours, summed over the queries (NaN without queries).
pub fn recall(exact: &ExactIndex, graph: &HnswIndex, queries: &[f32], k: usize) -> f64 {
    recall_given(&truths(exact, queries, k), graph, queries, k)
}

/// recall@k of a graph's [`HnswIndex::search_or_exact`] against exact
/// search on fixed queries, measured as often as the graph's beam changes.
/// The exact neighbours of a query are found once, and only for queries the
/// graph answers itself: those it hands to exact search get exactly the
/// exact answer (all `k` hits).
pub struct GraphRecall<'a> {
    exact: &'a ExactIndex,
    queries: &'a [f32],
    k: usize,
    truth: Vec<Option<Vec<Neighbour>>>,
    /// Count only the queries the graph answers itself.
    graph_answered_only: bool,
}

impl<'a> GraphRecall<'a> {
    /// The check of row-major `queries` in `exact`'s dimension.
    pub fn new(exact: &'a ExactIndex, queries: &'a [f32], k: usize) -> Self {
        let n = queries.len() / exact.dim().max(1);
        GraphRecall {
            exact,
            queries,
            k,
            truth: vec![None; n],
            graph_answered_only: false,
        }
    }

    /// The check of `queries` counting only those the graph answers itself
    /// (not those it hands to exact search): its recall is a floor on the
    /// recall of any mixture of such queries with far ones, whatever the
    /// share of far ones. 1 when the graph answers none.
    pub fn graph_answered(exact: &'a ExactIndex, queries: &'a [f32], k: usize) -> Self {
        GraphRecall {
            graph_answered_only: true,
            ..Self::new(exact, queries, k)
        }
    }

    /// recall@k of `graph` (built over `exact`'s points) on the queries.
    pub fn measure(&mut self, graph: &HnswIndex) -> f64 {
        self.measure_bounded(graph).0
    }

    /// recall@k of `graph` on the queries, and a lower confidence bound on
    /// it: the mean of the queries' recalls less twice its standard error
    /// (`NaN`s without queries). A beam widened until the measured recall
    /// first reaches a target would otherwise stop, about half the time,
    /// where the recall of patients is just under it.
    pub fn measure_bounded(&mut self, graph: &HnswIndex) -> (f64, f64) {
        let dim = self.exact.dim().max(1);
        let k = self.k;
        let answers: Vec<Option<Vec<Neighbour>>> = self
            .queries
            .par_chunks_exact(dim)
            .map(|q| graph.graph_answer(q, k))
            .collect();
        let need: Vec<usize> = (0..answers.len())
            .filter(|&i| answers[i].is_some() && self.truth[i].is_none())
            .collect();
        let found: Vec<(usize, Vec<Neighbour>)> = need
            .par_iter()
            .map(|&i| {
                let q = &self.queries[i * dim..(i + 1) * dim];
                (i, self.exact.search(q, k, None, None).neighbours)
            })
            .collect();
        for (i, t) in found {
            self.truth[i] = Some(t);
        }
        let exactly = k.min(self.exact.len());
        let per_query: Vec<(usize, usize)> = answers
            .iter()
            .zip(&self.truth)
            .filter(|(a, _)| a.is_some() || !self.graph_answered_only)
            .map(|(a, t)| match (a, t) {
                (Some(got), Some(t)) => (hits(t, got), t.len()),
                _ => (exactly, exactly),
            })
            .collect();
        if per_query.is_empty() && self.graph_answered_only {
            return (1.0, 1.0);
        }
        let mean = share(per_query.iter().fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1)));
        let recalls: Vec<f64> = per_query
            .iter()
            .filter(|q| q.1 > 0)
            .map(|&(h, t)| h as f64 / t as f64)
            .collect();
        let nq = recalls.len() as f64;
        let se = if recalls.len() > 1 {
            let m = recalls.iter().sum::<f64>() / nq;
            (recalls.iter().map(|r| (r - m) * (r - m)).sum::<f64>() / (nq - 1.0) / nq).sqrt()
        } else {
            0.0
        };
        (mean, mean - 2.0 * se)
    }
}

/// The exact `k` nearest neighbours of each row-major query.
pub fn truths(exact: &ExactIndex, queries: &[f32], k: usize) -> Vec<Vec<Neighbour>> {
    queries
        .par_chunks_exact(exact.dim().max(1))
        .map(|q| exact.search(q, k, None, None).neighbours)
        .collect()
}

/// [`recall`] against neighbours already found ([`truths`] of `queries`).
pub fn recall_given(truth: &[Vec<Neighbour>], graph: &HnswIndex, queries: &[f32], k: usize) -> f64 {
    let dim = queries.len() / truth.len().max(1);
    share(
        queries
            .par_chunks_exact(dim.max(1))
            .zip(truth)
            .map(|(q, t)| (hits(t, &graph.search(q, k)), t.len()))
            .reduce(|| (0, 0), |a, b| (a.0 + b.0, a.1 + b.1)),
    )
}

/// Hits over total (`NaN` for no total).
fn share((found, total): (usize, usize)) -> f64 {
    if total == 0 {
        f64::NAN
    } else {
        found as f64 / total as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::HnswParams;

    /// Spread probes lie between `SPREAD_MIN` and `SPREAD_MAX` of their
    /// member's exact k-distance from it, and the same seed gives the same
    /// probes.
    #[test]
    fn spread_probes_lie_within_their_band() {
        let (n, dim, k, m) = (3000, 6, 10, 200);
        let points = crate::rng::clustered_points(n, dim, 5, 3);
        let exact = ExactIndex::new(points, dim);
        let probes = spread_probes(&exact, |i| exact_kdist(&exact, k, i), m, 7);
        assert_eq!(
            probes,
            spread_probes(&exact, |i| exact_kdist(&exact, k, i), m, 7)
        );
        let (members, _) = probe_members(&exact, m, 7);
        for (q, &i) in probes.chunks_exact(dim).zip(&members) {
            let kdist = exact_kdist(&exact, k, i);
            let moved = super::super::squared_distance(exact.point(i), q).sqrt();
            assert!(moved >= SPREAD_MIN * kdist * 0.999, "{moved} {kdist}");
            assert!(moved <= SPREAD_MAX * kdist * 1.001, "{moved} {kdist}");
        }
    }

    /// Counting only the queries the graph answers: equal to the plain
    /// recall when the graph answers all, 1 when it answers none, and never
    /// above the plain recall (which counts exact answers as found).
    #[test]
    fn graph_answered_recall_is_a_floor() {
        let (n, dim, k) = (4000, 8, 10);
        let points = crate::rng::clustered_points(n, dim, 6, 5);
        let exact = ExactIndex::new(points.clone(), dim);
        let weak = HnswParams {
            max_connections: 4,
            ef_construction: 8,
            ef_search: 10,
            max_layers: 4,
        };
        let mut g = HnswIndex::build_own(&points, dim, weak, 1, None, |_| {});
        let queries = spread_probes(&exact, |i| exact_kdist(&exact, k, i), 300, 2);
        let both = |g: &HnswIndex| {
            (
                GraphRecall::new(&exact, &queries, k).measure_bounded(g),
                GraphRecall::graph_answered(&exact, &queries, k).measure_bounded(g),
            )
        };
        let (all, answered) = both(&g);
        assert_eq!(all, answered);
        assert!(all.0 < 1.0 && all.1 < all.0, "{all:?}");
        g.exact_beyond(Some(0.0));
        assert_eq!(both(&g).1, (1.0, 1.0));
        // Far queries (beyond the median k-th distance found) answered exactly.
        let mut kth: Vec<f32> = queries
            .chunks_exact(dim)
            .map(|q| exact.search(q, k, None, None).neighbours[k - 1].distance)
            .collect();
        kth.sort_by(f32::total_cmp);
        g.exact_beyond(Some(kth[kth.len() / 2]));
        let (all, answered) = both(&g);
        assert!(answered.0 < all.0, "{answered:?} {all:?}");
    }

    #[test]
    fn hits_count_ties_at_the_kth_distance() {
        let n = |index, distance| Neighbour { index, distance };
        let truth = [n(0, 1.0), n(1, 2.0)];
        assert_eq!(hits(&truth, &[n(0, 1.0), n(5, 2.0)]), 2);
        assert_eq!(hits(&truth, &[n(0, 1.0), n(5, 3.0)]), 1);
    }
}
