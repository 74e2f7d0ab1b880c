//! nof1's own HNSW graph layout and its search.
//!
//! `hnsw_rs` builds the graph ([`super::hnsw`]); this module holds what is
//! kept of it afterwards, as flat arrays in reference row ids: the layer of
//! every point, the entry point, and per layer the adjacency in compressed
//! sparse row form (layer 0 over every row, each upper layer over the rows
//! that reach it). The same arrays are what the model file stores
//! (`docs/formats.md`, "The graph section"), so loading one is a straight
//! read.
//!
//! Search is the usual HNSW descent: greedy on the upper layers, then a beam
//! of width `ef` on layer 0. Every distance is a squared Euclidean distance
//! summed in `f32` over the coordinates in order, exactly as
//! [`super::ExactIndex`] computes it, so the distance the graph reports for a
//! point is the exact distance to that point. The graph returns real points,
//! so its `i`-th neighbour is never nearer than the exact `i`-th neighbour.
//! Ties are broken by the lower row everywhere, which makes every search
//! deterministic.

use std::cell::RefCell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use super::Neighbour;

/// hnsw_rs's limit on the number of layers (its private `NB_LAYER_MAX`).
pub(crate) const LAYER_LIMIT: usize = 16;

/// Longest neighbour list hnsw_rs keeps on layer `layer`: `2M` on layer 0,
/// `M` above.
pub(crate) fn max_list_len(layer: usize, max_connections: usize) -> usize {
    if layer == 0 {
        2 * max_connections
    } else {
        max_connections
    }
}

/// The adjacency of one layer in compressed sparse row form.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Layer {
    /// Rows on this layer, ascending: every row whose level is at least the
    /// layer, and any other row hnsw_rs linked on it (see [`Graph`]). Empty
    /// for layer 0, where every row is a member and its rank is its row.
    pub(crate) rows: Vec<u32>,
    /// `offsets[r]..offsets[r + 1]` indexes the neighbours of the member of
    /// rank `r`; one more entry than members, starting at 0, non-decreasing,
    /// ending at `neighbours.len()`.
    pub(crate) offsets: Vec<usize>,
    /// Neighbour rows, list after list.
    pub(crate) neighbours: Vec<u32>,
}

impl Layer {
    /// The neighbours of the member of rank `rank` (empty if out of range).
    #[inline]
    fn list(&self, rank: usize) -> &[u32] {
        match (self.offsets.get(rank), self.offsets.get(rank + 1)) {
            (Some(&a), Some(&b)) => self.neighbours.get(a..b).unwrap_or(&[]),
            _ => &[],
        }
    }

    /// The neighbours of `row` on this upper layer (empty if it is not a member).
    #[inline]
    fn list_of_row(&self, row: u32) -> &[u32] {
        match self.rows.binary_search(&row) {
            Ok(rank) => self.list(rank),
            Err(_) => &[],
        }
    }
}

/// An HNSW graph over `n` reference rows, as flat arrays.
///
/// A row's *level* is the layer hnsw_rs drew for it; it is on every layer up
/// to its level. hnsw_rs also links a few rows on layers above their level
/// (a point inserted below the current top records the points it passed on
/// the way down; a new top point links the old entry point on its new
/// layers); those rows are members of those layers too, so the graph
/// searches exactly the links hnsw_rs built.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Graph {
    /// Level of every row.
    pub(crate) levels: Vec<u8>,
    /// Where every search starts: a row whose level is the top layer.
    pub(crate) entry: u32,
    /// Layers `0..=top`; empty only for a graph of no point.
    pub(crate) layers: Vec<Layer>,
}

impl Graph {
    /// Assembles a graph from every row's neighbour lists: `lists[row][j]` is
    /// the list of `row` on layer `j` (missing lists are empty), `top` the
    /// entry point's level. See [`Graph::from_parts`].
    ///
    /// # Panics
    /// As [`Graph::from_parts`].
    pub(crate) fn from_row_lists(
        levels: Vec<u8>,
        entry: u32,
        top: usize,
        lists: Vec<Vec<Vec<u32>>>,
    ) -> Graph {
        let mut layer0 = Layer {
            rows: Vec::new(),
            offsets: Vec::with_capacity(lists.len() + 1),
            neighbours: Vec::new(),
        };
        layer0.offsets.push(0);
        let mut upper = Vec::new();
        for (row, mut row_lists) in lists.into_iter().enumerate() {
            if let Some(list) = row_lists.first() {
                layer0.neighbours.extend_from_slice(list);
            }
            layer0.offsets.push(layer0.neighbours.len());
            if row_lists.iter().skip(1).any(|l| !l.is_empty()) {
                row_lists.remove(0);
                upper.push((row as u32, row_lists));
            }
        }
        Self::from_parts(levels, entry, top, layer0, upper)
    }

    /// Assembles a graph from its layer 0 and the upper-layer lists of the
    /// rows that have any: `upper` holds `(row, lists)` in increasing row
    /// order, `lists[j - 1]` being the row's list on layer `j` (missing lists
    /// are empty). The members of an upper layer `j` are the rows of level
    /// ≥ `j`, the rows with a list on `j` and the rows listed on `j`. Nothing
    /// else is checked here; see [`Graph::check`].
    ///
    /// # Panics
    /// If a list is on a layer above `top`, or a neighbour is not a row (caller bugs).
    pub(crate) fn from_parts(
        levels: Vec<u8>,
        entry: u32,
        top: usize,
        layer0: Layer,
        upper: Vec<(u32, Vec<Vec<u32>>)>,
    ) -> Graph {
        let n = levels.len();
        let mut member = vec![vec![false; n]; top];
        for (row, row_lists) in &upper {
            for (j, list) in row_lists.iter().enumerate() {
                if !list.is_empty() {
                    member[j][*row as usize] = true;
                    for &nb in list {
                        member[j][nb as usize] = true;
                    }
                }
            }
        }
        let mut layers = Vec::with_capacity(top + 1);
        layers.push(layer0);
        for (j, member) in (1..=top).zip(&member) {
            let rows: Vec<u32> = (0..n as u32)
                .filter(|&row| levels[row as usize] as usize >= j || member[row as usize])
                .collect();
            let mut offsets = Vec::with_capacity(rows.len() + 1);
            offsets.push(0);
            let mut neighbours = Vec::new();
            let mut at = 0usize;
            for &row in &rows {
                while upper.get(at).is_some_and(|u| u.0 < row) {
                    at += 1;
                }
                if let Some((r, lists)) = upper.get(at)
                    && *r == row
                    && let Some(list) = lists.get(j - 1)
                {
                    neighbours.extend_from_slice(list);
                }
                offsets.push(neighbours.len());
            }
            layers.push(Layer {
                rows,
                offsets,
                neighbours,
            });
        }
        Graph {
            levels,
            entry,
            layers,
        }
    }

    /// Number of points.
    pub(crate) fn len(&self) -> usize {
        self.levels.len()
    }

    /// The top layer (the entry point's level).
    pub(crate) fn top(&self) -> usize {
        self.layers.len().saturating_sub(1)
    }

    /// Checks every invariant the search relies on, for a graph of `n ≥ 1`
    /// points built with `max_connections`: the entry point is a row whose
    /// level is the top layer, no level is above it, each upper layer's
    /// members are ascending rows including every row of level ≥ the layer,
    /// offsets are well-formed, no list is longer than hnsw_rs allows, and
    /// every neighbour on a layer is a member of it.
    ///
    /// # Errors
    /// A message naming the first violation.
    pub(crate) fn check(&self, max_connections: usize) -> std::result::Result<(), String> {
        let n = self.len();
        if n == 0 || u32::try_from(n).is_err() || self.layers.is_empty() {
            return Err(format!("cannot hold a graph of {n} points"));
        }
        let top = self.top();
        if top >= LAYER_LIMIT {
            return Err(format!("{} layers, at most {LAYER_LIMIT}", top + 1));
        }
        let entry = self.entry as usize;
        match self.levels.get(entry) {
            None => return Err(format!("entry point {entry} is beyond the {n} points")),
            Some(&l) if l as usize != top => {
                return Err(format!(
                    "entry point {entry} is in layer {l}, the top layer is {top}"
                ));
            }
            Some(_) => {}
        }
        if let Some((row, l)) = self
            .levels
            .iter()
            .enumerate()
            .find(|&(_, &l)| l as usize > top)
        {
            return Err(format!(
                "point {row} is in layer {l}, above the top layer {top}"
            ));
        }
        // The rows above layer 0, with their levels (a few: about n / M).
        let high: Vec<(u32, u8)> = self
            .levels
            .iter()
            .enumerate()
            .filter(|&(_, &l)| l > 0)
            .map(|(row, &l)| (row as u32, l))
            .collect();
        for (j, layer) in self.layers.iter().enumerate() {
            let members = if j == 0 {
                if !layer.rows.is_empty() {
                    return Err("layer 0 lists its rows".into());
                }
                n
            } else {
                if let Some(&row) = layer.rows.last()
                    && row as usize >= n
                {
                    return Err(format!("layer {j}: member {row} is beyond the {n} points"));
                }
                if layer.rows.windows(2).any(|w| w[0] >= w[1]) {
                    return Err(format!("layer {j}: members are not in increasing order"));
                }
                let mut at = 0usize;
                for &(row, l) in high.iter().filter(|&&(_, l)| l as usize >= j) {
                    match layer.rows[at..].binary_search(&row) {
                        Ok(i) => at += i + 1,
                        Err(_) => {
                            return Err(format!(
                                "layer {j}: point {row} of level {l} is not a member"
                            ));
                        }
                    }
                }
                layer.rows.len()
            };
            if layer.offsets.len() != members + 1
                || layer.offsets.first() != Some(&0)
                || layer.offsets.last() != Some(&layer.neighbours.len())
            {
                return Err(format!(
                    "layer {j}: offsets do not span its {members} members and {} neighbours",
                    layer.neighbours.len()
                ));
            }
            let most = max_list_len(j, max_connections);
            for (rank, w) in layer.offsets.windows(2).enumerate() {
                if w[1] < w[0] || w[1] - w[0] > most {
                    let row = layer.rows.get(rank).map_or(rank, |&r| r as usize);
                    return Err(format!(
                        "layer {j}: point {row} has {} neighbours, at most {most} allowed",
                        w[1] as i128 - w[0] as i128
                    ));
                }
            }
            for &nb in &layer.neighbours {
                if nb as usize >= n {
                    return Err(format!(
                        "layer {j}: neighbour {nb} is beyond the {n} points"
                    ));
                }
                if j > 0 && layer.rows.binary_search(&nb).is_err() {
                    return Err(format!("layer {j}: neighbour {nb} is not on the layer"));
                }
            }
        }
        Ok(())
    }

    /// The `k` nearest points to `query` the graph finds, ascending by
    /// distance then row, with a beam of `max(ef, k)` on layer 0.
    ///
    /// `points` are the row-major `n × dim` coordinates the graph was built
    /// on. Distances are Euclidean (the square root of the `f32` squared
    /// distance, as [`super::ExactIndex`] reports them). Fewer than `k` only
    /// when the graph reaches fewer points.
    #[cfg(test)]
    pub(crate) fn search(
        &self,
        points: &[f32],
        dim: usize,
        query: &[f32],
        k: usize,
        ef: usize,
    ) -> Vec<Neighbour> {
        self.search_within(points, dim, query, k, ef, None).0
    }

    /// [`Graph::search`], and how many of the points it visited on layer 0
    /// lie within `radius` (re-measured exactly: a lower bound on the points
    /// within it, up to [`super::exact::SUPPORT_CAP`]; 0 without a radius).
    ///
    /// The walk compares distances summed in eight partial sums
    /// ([`super::build::fast_squared_distance`]); the points it ends with are
    /// then ordered and reported by their exact `f32` distances, so each
    /// reported distance is the exact distance to a real point.
    pub(crate) fn search_within(
        &self,
        points: &[f32],
        dim: usize,
        query: &[f32],
        k: usize,
        ef: usize,
        radius: Option<f32>,
    ) -> (Vec<Neighbour>, u32) {
        if k == 0 || self.layers.is_empty() {
            return (Vec::new(), 0);
        }
        let point = |row: u32| -> &[f32] {
            let at = row as usize * dim;
            &points[at..at + dim]
        };
        let dist_sq = |row: u32| -> f32 { super::build::fast_squared_distance(point(row), query) };
        // Greedy descent through the upper layers.
        let mut best = key(dist_sq(self.entry), self.entry);
        for layer in self.layers[1..].iter().rev() {
            loop {
                let here = best;
                for &nb in layer.list_of_row(row_of(here)) {
                    best = best.min(key(dist_sq(nb), nb));
                }
                if best == here {
                    break;
                }
            }
        }
        // Beam search on layer 0.
        let ef = ef.max(k);
        let layer0 = &self.layers[0];
        SCRATCH.with(|s| {
            let mut s = s.borrow_mut();
            let Scratch {
                visited,
                generation,
                candidates,
                results,
                near,
            } = &mut *s;
            start_generation(visited, generation, self.len());
            let g = *generation;
            candidates.clear();
            results.clear();
            visited[row_of(best) as usize] = g;
            candidates.push(Reverse(best));
            results.push(best);
            // Every visited point possibly within the radius (its walking
            // distance within a relative 1e-4 of it: the two sums differ by
            // a few ulps), re-measured exactly at the end for the support.
            near.clear();
            let loose = radius.map_or(f32::NEG_INFINITY, |r| r * r * (1.0 + 1e-4));
            let cap = 2 * super::exact::SUPPORT_CAP as usize;
            if f32::from_bits((best >> 32) as u32) <= loose {
                near.push(row_of(best));
            }
            while let Some(Reverse(c)) = candidates.pop() {
                if results.len() >= ef && results.peek().is_some_and(|&w| c > w) {
                    break;
                }
                for &nb in layer0.list(row_of(c) as usize) {
                    let seen = &mut visited[nb as usize];
                    if *seen == g {
                        continue;
                    }
                    *seen = g;
                    let d = dist_sq(nb);
                    if d <= loose && near.len() < cap {
                        near.push(nb);
                    }
                    let kn = key(d, nb);
                    if results.len() < ef || results.peek().is_some_and(|&w| kn < w) {
                        candidates.push(Reverse(kn));
                        results.push(kn);
                        if results.len() > ef {
                            results.pop();
                        }
                    }
                }
            }
            let mut found: Vec<u64> = results
                .drain()
                .map(|kk| {
                    let row = row_of(kk);
                    key(super::squared_distance(point(row), query), row)
                })
                .collect();
            found.sort_unstable();
            let within = radius.map_or(0, |r| {
                let r_sq = r * r;
                near.iter()
                    .filter(|&&row| super::squared_distance(point(row), query) <= r_sq)
                    .count()
                    .min(super::exact::SUPPORT_CAP as usize) as u32
            });
            found.truncate(k);
            let nb = found
                .into_iter()
                .map(|kk| Neighbour {
                    index: row_of(kk),
                    distance: f32::from_bits((kk >> 32) as u32).max(0.0).sqrt(),
                })
                .collect();
            (nb, within)
        })
    }
}

/// A search key ordering by squared distance, then row. A squared distance
/// is never negative (nor `-0.0`), so its bits order like its value.
#[inline]
pub(crate) fn key(d_sq: f32, row: u32) -> u64 {
    (u64::from(d_sq.to_bits()) << 32) | u64::from(row)
}

#[inline]
pub(crate) fn row_of(key: u64) -> u32 {
    key as u32
}

/// Per-thread search buffers, reused from query to query: a visited mark per
/// row (the query's generation number), the candidate and result heaps.
#[derive(Default)]
struct Scratch {
    visited: Vec<u32>,
    generation: u32,
    candidates: BinaryHeap<Reverse<u64>>,
    results: BinaryHeap<u64>,
    /// Visited points that may lie within the support radius.
    near: Vec<u32>,
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Starts a new query: a generation number no row is marked with yet.
fn start_generation(visited: &mut Vec<u32>, generation: &mut u32, n: usize) {
    if visited.len() < n {
        visited.resize(n, 0);
    }
    *generation = generation.wrapping_add(1);
    if *generation == 0 {
        visited.fill(0);
        *generation = 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path 0 – 1 – 2 – 3 on layer 0, with 3 alone on layer 1 and row 1
    /// linked to it there (above its level, as hnsw_rs does).
    fn path() -> (Graph, Vec<f32>) {
        let levels = vec![0, 0, 0, 1];
        let lists = vec![
            vec![vec![1]],
            vec![vec![0, 2], vec![3]],
            vec![vec![1, 3]],
            vec![vec![2], vec![1]],
        ];
        (
            Graph::from_row_lists(levels, 3, 1, lists),
            vec![0.0, 1.0, 2.0, 3.0],
        )
    }

    #[test]
    fn assembles_rows_above_their_level() {
        let (g, _) = path();
        assert_eq!(g.layers[0].offsets, vec![0, 1, 3, 5, 6]);
        assert_eq!(g.layers[0].neighbours, vec![1, 0, 2, 1, 3, 2]);
        assert_eq!(g.layers[1].rows, vec![1, 3]);
        assert_eq!(g.layers[1].offsets, vec![0, 1, 2]);
        assert_eq!(g.layers[1].neighbours, vec![3, 1]);
    }

    #[test]
    fn walks_the_path_and_orders_ties_by_row() {
        let (g, pts) = path();
        g.check(1).expect("valid");
        let found = g.search(&pts, 1, &[0.5], 4, 4);
        let rows: Vec<u32> = found.iter().map(|n| n.index).collect();
        assert_eq!(rows, vec![0, 1, 2, 3]);
        assert_eq!(found[0].distance, 0.5);
        let found = g.search(&pts, 1, &[1.5], 2, 1);
        let rows: Vec<u32> = found.iter().map(|n| n.index).collect();
        assert_eq!(rows, vec![1, 2]);
        assert!(g.search(&pts, 1, &[0.5], 0, 4).is_empty());
        assert!(Graph::default().search(&[], 1, &[0.0], 3, 8).is_empty());
    }

    #[test]
    fn checks_name_the_violation() {
        let (g, _) = path();
        let bad = |f: &dyn Fn(&mut Graph), want: &str| {
            let mut b = g.clone();
            f(&mut b);
            let e = b.check(1).expect_err(want);
            assert!(e.contains(want), "{e}");
        };
        bad(&|b| b.entry = 9, "beyond");
        bad(&|b| b.entry = 0, "entry point 0 is in layer 0");
        bad(&|b| b.levels[0] = 3, "above the top layer");
        bad(&|b| b.levels[0] = 1, "point 0 of level 1 is not a member");
        bad(&|b| b.layers[0].neighbours[0] = 7, "neighbour 7 is beyond");
        bad(&|b| b.layers[1].neighbours.push(0), "offsets");
        bad(&|b| b.layers[0].offsets[2] = 0, "neighbours, at most");
        bad(&|b| b.layers[1].rows.reverse(), "increasing");
        bad(&|b| b.layers[1].rows[1] = 4, "member 4 is beyond");
        bad(
            &|b| b.layers[1].neighbours[0] = 0,
            "neighbour 0 is not on the layer",
        );
        let mut g2 = g.clone();
        g2.layers[0].offsets = vec![0, 1, 4, 6, 8];
        g2.layers[0].neighbours.extend([0, 1]);
        assert!(g2.check(1).unwrap_err().contains("at most 2"));
    }

    #[test]
    fn generations_wrap_without_stale_marks() {
        let mut visited = vec![7u32; 3];
        let mut generation = u32::MAX;
        start_generation(&mut visited, &mut generation, 5);
        assert_eq!(generation, 1);
        assert_eq!(visited, vec![0; 5]);
    }
}
