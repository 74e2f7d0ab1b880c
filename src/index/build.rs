//! nof1's own graph builder: an HNSW graph (Malkov & Yashunin 2018) built in
//! parallel batches, the same graph for any number of threads.
//!
//! Points are inserted in a seeded order. Each point draws its level from the
//! seeded generator (`⌊−ln U / ln M⌋`, as HNSW does). Insertion runs in
//! batches: the points of one batch search the graph as it stood before the
//! batch (read only, in parallel), choose their neighbours with HNSW's
//! heuristic, and then the batch is committed: each point's lists are
//! written, and every existing point that gains links has its list merged
//! and, when over capacity, pruned by the same heuristic (in parallel, one
//! task per point, each a pure function of the graph before the batch). A
//! batch holds at most a sixteenth of the points already inserted (and at
//! most [`MAX_BATCH`]), so a point misses at most a few percent of the
//! graph's points as candidates. Nothing depends on the thread schedule, so
//! the graph is a function of the points, the parameters and the seed.
//!
//! Distances while building use [`fast_squared_distance`] (eight partial
//! sums, which vectorises); searches report the exact `f32` distance
//! ([`super::squared_distance`]) of the points they return.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rayon::prelude::*;

use super::HnswParams;
use super::graph::{Graph, LAYER_LIMIT, Layer, key, max_list_len, row_of};
use crate::rng::SplitMix64;

/// Largest batch of points inserted together.
pub(crate) const MAX_BATCH: usize = 2048;

/// A batch holds at most `1 / BATCH_SHARE` of the points already inserted.
const BATCH_SHARE: usize = 16;

/// Squared Euclidean distance summed in eight interleaved partial sums (so it
/// vectorises): within a few ulps of [`super::squared_distance`], not equal
/// to it bit for bit. Used to build and to walk graphs; never reported.
#[inline]
pub(crate) fn fast_squared_distance(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let ca = a.chunks_exact(8);
    let cb = b.chunks_exact(8);
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            let t = x[l] - y[l];
            acc[l] += t * t;
        }
    }
    let mut tail = 0.0f32;
    for (x, y) in ra.iter().zip(rb) {
        let t = x - y;
        tail += t * t;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// The squared distance of a search key ([`key`]).
#[inline]
fn dist_of(key: u64) -> f32 {
    f32::from_bits((key >> 32) as u32)
}

/// One layer's lists while building: `cap` slots per member.
struct Slots {
    /// Members of the layer, ascending (empty on layer 0: every row, rank = row).
    rows: Vec<u32>,
    base: bool,
    cap: usize,
    lists: Vec<u32>,
    lens: Vec<u16>,
}

impl Slots {
    #[inline]
    fn rank(&self, row: u32) -> Option<usize> {
        if self.base {
            Some(row as usize)
        } else {
            self.rows.binary_search(&row).ok()
        }
    }

    #[inline]
    fn list(&self, row: u32) -> &[u32] {
        match self.rank(row) {
            Some(r) => &self.lists[r * self.cap..r * self.cap + self.lens[r] as usize],
            None => &[],
        }
    }

    fn set(&mut self, row: u32, list: &[u32]) {
        if let Some(r) = self.rank(row) {
            let n = list.len().min(self.cap);
            self.lists[r * self.cap..r * self.cap + n].copy_from_slice(&list[..n]);
            self.lens[r] = n as u16;
        }
    }

    /// The lists in compressed sparse row form, compacted in place (no
    /// second copy of the lists).
    fn into_layer(mut self) -> Layer {
        let members = self.lens.len();
        let mut offsets = Vec::with_capacity(members + 1);
        offsets.push(0);
        let mut end = 0usize;
        for (r, &len) in self.lens.iter().enumerate() {
            let from = r * self.cap;
            self.lists.copy_within(from..from + len as usize, end);
            end += len as usize;
            offsets.push(end);
        }
        self.lists.truncate(end);
        self.lists.shrink_to_fit();
        Layer {
            rows: if self.base { Vec::new() } else { self.rows },
            offsets,
            neighbours: self.lists,
        }
    }
}

/// Per-thread buffers for the build's searches.
#[derive(Default)]
struct Scratch {
    visited: Vec<u32>,
    generation: u32,
    candidates: BinaryHeap<Reverse<u64>>,
    results: BinaryHeap<u64>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// The graph under construction.
struct Builder<'a> {
    points: &'a [f32],
    dim: usize,
    m: usize,
    ef: usize,
    levels: Vec<u8>,
    layers: Vec<Slots>,
}

/// What one inserted point chose: its row and, per layer up to its level (or
/// the graph's top), its neighbours.
struct Chosen {
    row: u32,
    lists: Vec<Vec<u32>>,
}

impl Builder<'_> {
    #[inline]
    fn point(&self, row: u32) -> &[f32] {
        let at = row as usize * self.dim;
        &self.points[at..at + self.dim]
    }

    #[inline]
    fn dist(&self, a: u32, q: &[f32]) -> f32 {
        fast_squared_distance(self.point(a), q)
    }

    /// Greedy walk on `layer` from `start` (a key) to a local minimum.
    fn greedy(&self, q: &[f32], mut best: u64, layer: usize) -> u64 {
        loop {
            let here = best;
            for &nb in self.layers[layer].list(row_of(here)) {
                best = best.min(key(self.dist(nb, q), nb));
            }
            if best == here {
                return best;
            }
        }
    }

    /// Beam search of width `ef` on `layer` from `entries`: the keys found,
    /// ascending.
    fn beam(&self, q: &[f32], entries: &[u64], layer: usize, ef: usize) -> Vec<u64> {
        let n = self.levels.len();
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            let Scratch {
                visited,
                generation,
                candidates,
                results,
            } = &mut *s;
            if visited.len() < n {
                visited.resize(n, 0);
            }
            *generation = generation.wrapping_add(1);
            if *generation == 0 {
                visited.fill(0);
                *generation = 1;
            }
            let g = *generation;
            candidates.clear();
            results.clear();
            for &e in entries {
                let r = row_of(e) as usize;
                if visited[r] != g {
                    visited[r] = g;
                    candidates.push(Reverse(e));
                    results.push(e);
                }
            }
            while results.len() > ef {
                results.pop();
            }
            let slots = &self.layers[layer];
            while let Some(Reverse(c)) = candidates.pop() {
                if results.len() >= ef && results.peek().is_some_and(|&w| c > w) {
                    break;
                }
                for &nb in slots.list(row_of(c)) {
                    let seen = &mut visited[nb as usize];
                    if *seen == g {
                        continue;
                    }
                    *seen = g;
                    let kn = key(self.dist(nb, q), nb);
                    if results.len() < ef || results.peek().is_some_and(|&w| kn < w) {
                        candidates.push(Reverse(kn));
                        results.push(kn);
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                }
            }
            let mut found: Vec<u64> = results.drain().collect();
            found.sort_unstable();
            found
        })
    }

    /// HNSW's neighbour heuristic: from `candidates` (keys by distance to
    /// the base point, ascending), keep a candidate unless it is nearer to
    /// one already kept than to the base; at most `m`.
    fn select(&self, candidates: &[u64], m: usize) -> Vec<u32> {
        let mut kept: Vec<u32> = Vec::with_capacity(m);
        for &c in candidates {
            if kept.len() >= m {
                break;
            }
            let (d, row) = (dist_of(c), row_of(c));
            let p = self.point(row);
            if kept.iter().all(|&s| self.dist(s, p) >= d) {
                kept.push(row);
            }
        }
        kept
    }

    /// Searches the graph (entry `entry` on layer `top`) for the point
    /// `row` and chooses its neighbours on each layer up to its level.
    fn choose(&self, row: u32, entry: u32, top: usize) -> Chosen {
        let q = self.point(row);
        let level = self.levels[row as usize] as usize;
        let mut best = key(self.dist(entry, q), entry);
        for layer in (level + 1..=top).rev() {
            best = self.greedy(q, best, layer);
        }
        let mut lists = vec![Vec::new(); level + 1];
        let mut entries = vec![best];
        for layer in (0..=level.min(top)).rev() {
            let found = self.beam(q, &entries, layer, self.ef);
            lists[layer] = self.select(&found, self.m);
            entries = found;
        }
        Chosen { row, lists }
    }

    /// `target`'s list on `layer` with `sources` added, pruned by the
    /// heuristic when over the layer's capacity.
    fn merged(&self, layer: usize, target: u32, sources: &[u32]) -> Vec<u32> {
        let slots = &self.layers[layer];
        let current = slots.list(target);
        let mut all: Vec<u32> = current.to_vec();
        for &s in sources {
            if s != target && !all.contains(&s) {
                all.push(s);
            }
        }
        if all.len() <= slots.cap {
            return all;
        }
        let p = self.point(target);
        let mut keys: Vec<u64> = all.iter().map(|&r| key(self.dist(r, p), r)).collect();
        keys.sort_unstable();
        self.select(&keys, slots.cap)
    }
}

/// Builds an HNSW graph over the row-major `n × dim` `points` with
/// `params.max_connections` links per point (twice that on layer 0) and a
/// beam of `params.ef_construction`; `progress` gets the number of points
/// inserted so far. The same graph for any number of threads.
///
/// # Panics
/// If `dim` is 0 or `points.len()` is not a multiple of it, or there are
/// `u32::MAX` points or more (caller bugs).
pub(crate) fn build(
    points: &[f32],
    dim: usize,
    params: &HnswParams,
    seed: u64,
    progress: &mut dyn FnMut(usize),
) -> Graph {
    assert!(dim > 0 && points.len().is_multiple_of(dim), "points shape");
    let n = points.len() / dim;
    assert!(u32::try_from(n).is_ok(), "too many points");
    if n == 0 {
        return Graph::default();
    }
    let m = params.max_connections.max(2);
    let layer_cap = params.max_layers.clamp(1, LAYER_LIMIT);
    let mut rng = SplitMix64::new(seed ^ 0x4e53_5747_5241_5048);
    let scale = 1.0 / (m as f64).ln();
    let levels: Vec<u8> = (0..n)
        .map(|_| {
            let u = 1.0 - rng.next_f64();
            ((-u.ln() * scale).floor() as usize).min(layer_cap - 1) as u8
        })
        .collect();
    let mut order: Vec<u32> = (0..n as u32).collect();
    rng.shuffle(&mut order);
    let top_level = levels.iter().copied().max().unwrap_or(0) as usize;
    let layers: Vec<Slots> = (0..=top_level)
        .map(|j| {
            let rows: Vec<u32> = if j == 0 {
                Vec::new()
            } else {
                (0..n as u32)
                    .filter(|&r| levels[r as usize] as usize >= j)
                    .collect()
            };
            let members = if j == 0 { n } else { rows.len() };
            let cap = max_list_len(j, m);
            Slots {
                rows,
                base: j == 0,
                cap,
                lists: vec![0; members * cap],
                lens: vec![0; members],
            }
        })
        .collect();
    let mut b = Builder {
        points,
        dim,
        m,
        ef: params.ef_construction.max(m),
        levels,
        layers,
    };
    let mut entry = order[0];
    let mut top = b.levels[entry as usize] as usize;
    let mut done = 1usize;
    progress(done);
    while done < n {
        let size = (done / BATCH_SHARE).clamp(1, MAX_BATCH).min(n - done);
        let batch = &order[done..done + size];
        let chosen: Vec<Chosen> = batch
            .par_iter()
            .map(|&row| b.choose(row, entry, top))
            .collect();
        // Links back from the existing points each new point chose.
        let mut edges: Vec<(u8, u32, u32)> = Vec::new();
        for c in &chosen {
            for (layer, list) in c.lists.iter().enumerate() {
                edges.extend(list.iter().map(|&t| (layer as u8, t, c.row)));
            }
        }
        edges.sort_unstable();
        let groups: Vec<&[(u8, u32, u32)]> =
            edges.chunk_by(|a, c| a.0 == c.0 && a.1 == c.1).collect();
        let updated: Vec<(usize, u32, Vec<u32>)> = groups
            .par_iter()
            .map(|g| {
                let (layer, target) = (g[0].0 as usize, g[0].1);
                let sources: Vec<u32> = g.iter().map(|e| e.2).collect();
                (layer, target, b.merged(layer, target, &sources))
            })
            .collect();
        for c in &chosen {
            for (layer, list) in c.lists.iter().enumerate() {
                b.layers[layer].set(c.row, list);
            }
        }
        for (layer, target, list) in &updated {
            b.layers[*layer].set(*target, list);
        }
        for &row in batch {
            let level = b.levels[row as usize] as usize;
            if level > top {
                top = level;
                entry = row;
            }
        }
        done += size;
        progress(done);
    }
    let Builder { levels, layers, .. } = b;
    let mut layers: Vec<Layer> = layers.into_iter().map(Slots::into_layer).collect();
    layers.truncate(top + 1);
    Graph {
        levels,
        entry,
        layers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::ExactIndex;

    fn params() -> HnswParams {
        HnswParams {
            max_connections: 8,
            ef_construction: 40,
            ef_search: 40,
            max_layers: 16,
        }
    }

    #[test]
    fn fast_distance_is_close_to_the_exact_one() {
        let mut rng = SplitMix64::new(3);
        for dim in [1, 7, 8, 9, 16, 31, 32, 33] {
            let a: Vec<f32> = (0..dim).map(|_| rng.normal() as f32).collect();
            let b: Vec<f32> = (0..dim).map(|_| rng.normal() as f32).collect();
            let e = crate::index::squared_distance(&a, &b);
            let f = fast_squared_distance(&a, &b);
            assert!((e - f).abs() <= 1e-5 * e.max(1.0), "{dim}: {e} vs {f}");
        }
    }

    #[test]
    fn same_graph_for_any_thread_count_and_valid() {
        let dim = 6;
        let pts = crate::rng::clustered_points(3000, dim, 7, 5);
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("pool");
        let three = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .expect("pool");
        let g1 = one.install(|| build(&pts, dim, &params(), 9, &mut |_| {}));
        let g3 = three.install(|| build(&pts, dim, &params(), 9, &mut |_| {}));
        assert_eq!(g1, g3);
        g1.check(params().max_connections).expect("valid graph");
        let other = build(&pts, dim, &params(), 10, &mut |_| {});
        assert_ne!(g1, other, "the seed changes the graph");
    }

    #[test]
    fn finds_most_exact_neighbours() {
        let dim = 12;
        let n = 4000;
        let pts = crate::rng::clustered_points(n + 200, dim, 9, 11);
        let (refs, queries) = pts.split_at(n * dim);
        let g = build(refs, dim, &params(), 1, &mut |_| {});
        let exact = ExactIndex::new(refs.to_vec(), dim);
        let k = 10;
        let mut hit = 0usize;
        for q in queries.chunks_exact(dim) {
            let want: Vec<u32> = exact
                .search(q, k, None, None)
                .neighbours
                .iter()
                .map(|n| n.index)
                .collect();
            let got = g.search(refs, dim, q, k, 64);
            for w in got.windows(2) {
                assert!(w[0].distance <= w[1].distance);
            }
            hit += got.iter().filter(|n| want.contains(&n.index)).count();
        }
        let recall = hit as f64 / (200 * k) as f64;
        assert!(recall >= 0.95, "recall {recall}");
    }

    #[test]
    fn tiny_inputs() {
        let g = build(&[1.0, 2.0], 1, &params(), 1, &mut |_| {});
        g.check(8).expect("valid");
        assert_eq!(g.search(&[1.0, 2.0], 1, &[1.9], 2, 4).len(), 2);
        assert_eq!(build(&[], 3, &params(), 1, &mut |_| {}), Graph::default());
    }
}
