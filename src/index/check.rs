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

/// `m` seeded reference members (at most all of them), each probed twice:
/// moved by [`JITTER_FRACTION`] of its exact k-distance in a random direction
/// (in distribution), and pushed [`PUSH_FACTOR`]× outward (out of
/// distribution). Returns `(inside, outside)`, row-major.
pub fn probes(exact: &ExactIndex, k: usize, m: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let dim = exact.dim();
    let (members, mut rng) = probe_members(exact, m, seed);
    let mut inside = Vec::with_capacity(members.len() * dim);
    for &i in &members {
        let x = exact.point(i);
        let kdist = exact
            .search(x, k, Some(i as u32), None)
            .neighbours
            .last()
            .map_or(0.0, |nb| nb.distance);
        let dir: Vec<f32> = (0..dim).map(|_| rng.normal() as f32).collect();
        let norm = dir.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-30);
        inside.extend(
            x.iter()
                .zip(&dir)
                .map(|(a, d)| a + JITTER_FRACTION * kdist * d / norm),
        );
    }
    (inside, pushed(exact, &members))
}

/// The out-of-distribution probes of [`probes`] alone (the same members
/// pushed outward), without the exact searches the jittered ones need.
pub fn pushed_probes(exact: &ExactIndex, m: usize, seed: u64) -> Vec<f32> {
    pushed(exact, &probe_members(exact, m, seed).0)
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
        }
    }

    /// recall@k of `graph` (built over `exact`'s points) on the queries.
    pub fn measure(&mut self, graph: &HnswIndex) -> f64 {
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
        share(
            answers
                .iter()
                .zip(&self.truth)
                .map(|(a, t)| match (a, t) {
                    (Some(got), Some(t)) => (hits(t, got), t.len()),
                    _ => (exactly, exactly),
                })
                .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1)),
        )
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

    #[test]
    fn hits_count_ties_at_the_kth_distance() {
        let n = |index, distance| Neighbour { index, distance };
        let truth = [n(0, 1.0), n(1, 2.0)];
        assert_eq!(hits(&truth, &[n(0, 1.0), n(5, 2.0)]), 2);
        assert_eq!(hits(&truth, &[n(0, 1.0), n(5, 3.0)]), 1);
    }
}
