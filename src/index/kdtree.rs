//! An exact k-d tree for low-dimensional embeddings.
//!
//! Built by median splits on the widest bounding-box side; every node keeps
//! its bounding box, which gives both the lower bound used to prune nearest-
//! neighbour search and the upper bound used to count whole subtrees in a
//! radius count. Distances are computed exactly as by a full scan (same
//! coordinate order, `f32`), so results are identical to the scan, ties
//! included (broken by the lower original index).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use super::TopK;

/// Points per leaf.
const LEAF_SIZE: usize = 8;

/// A node waiting in the best-first queue (smallest bound first).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Visit {
    bound: f32,
    id: u32,
}

impl Eq for Visit {}

impl Ord for Visit {
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .bound
            .total_cmp(&self.bound)
            .then(other.id.cmp(&self.id))
    }
}

impl PartialOrd for Visit {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Node {
    start: u32,
    end: u32,
    /// Children; `u32::MAX` for a leaf.
    left: u32,
    right: u32,
}

/// A k-d tree over row-major `f32` points.
#[derive(Debug, Clone, PartialEq)]
pub struct KdTree {
    dim: usize,
    /// Points in tree order, row-major.
    points: Vec<f32>,
    /// Original row index of each point in tree order.
    order: Vec<u32>,
    nodes: Vec<Node>,
    /// Bounding boxes, `2 × dim` per node (min then max).
    boxes: Vec<f32>,
}

impl KdTree {
    /// Builds the tree over `points` (row-major, `dim` columns).
    pub fn build(points: &[f32], dim: usize) -> KdTree {
        let n = points.len() / dim.max(1);
        let mut order: Vec<u32> = (0..n as u32).collect();
        let mut tree = KdTree {
            dim,
            points: Vec::new(),
            order: Vec::new(),
            nodes: Vec::with_capacity(2 * n / LEAF_SIZE + 1),
            boxes: Vec::new(),
        };
        if n > 0 {
            tree.build_node(points, &mut order, 0, n);
        }
        tree.points = Vec::with_capacity(n * dim);
        for &i in &order {
            let i = i as usize;
            tree.points
                .extend_from_slice(&points[i * dim..(i + 1) * dim]);
        }
        tree.order = order;
        tree
    }

    fn build_node(&mut self, points: &[f32], order: &mut [u32], start: usize, end: usize) -> u32 {
        let dim = self.dim;
        let mut lo = vec![f32::INFINITY; dim];
        let mut hi = vec![f32::NEG_INFINITY; dim];
        for &i in &order[start..end] {
            let p = &points[i as usize * dim..(i as usize + 1) * dim];
            for d in 0..dim {
                lo[d] = lo[d].min(p[d]);
                hi[d] = hi[d].max(p[d]);
            }
        }
        let id = self.nodes.len() as u32;
        self.nodes.push(Node {
            start: start as u32,
            end: end as u32,
            left: u32::MAX,
            right: u32::MAX,
        });
        self.boxes.extend_from_slice(&lo);
        self.boxes.extend_from_slice(&hi);
        if end - start <= LEAF_SIZE {
            return id;
        }
        let split = (0..dim)
            .max_by(|&a, &b| (hi[a] - lo[a]).total_cmp(&(hi[b] - lo[b])))
            .unwrap_or(0);
        if hi[split] - lo[split] <= 0.0 {
            return id; // all points identical: keep as one leaf
        }
        let mid = (start + end) / 2;
        order[start..end].select_nth_unstable_by(mid - start, |&a, &b| {
            points[a as usize * dim + split]
                .total_cmp(&points[b as usize * dim + split])
                .then(a.cmp(&b))
        });
        let left = self.build_node(points, order, start, mid);
        let right = self.build_node(points, order, mid, end);
        self.nodes[id as usize].left = left;
        self.nodes[id as usize].right = right;
        id
    }

    /// Squared distance from `q` to node `id`'s box (0 inside).
    #[inline]
    fn min_dist_sq(&self, id: usize, q: &[f32]) -> f32 {
        let dim = self.dim;
        let b = &self.boxes[id * 2 * dim..(id + 1) * 2 * dim];
        let mut s = 0.0f32;
        for d in 0..dim {
            let v = q[d];
            let t = if v < b[d] {
                b[d] - v
            } else if v > b[dim + d] {
                v - b[dim + d]
            } else {
                0.0
            };
            s += t * t;
        }
        s
    }

    /// Squared distance from `q` to the farthest corner of node `id`'s box.
    #[inline]
    fn max_dist_sq(&self, id: usize, q: &[f32]) -> f32 {
        let dim = self.dim;
        let b = &self.boxes[id * 2 * dim..(id + 1) * 2 * dim];
        let mut s = 0.0f32;
        for d in 0..dim {
            let t = (q[d] - b[d]).abs().max((b[dim + d] - q[d]).abs());
            s += t * t;
        }
        s
    }

    #[inline]
    fn dist_sq(&self, pos: usize, q: &[f32]) -> f32 {
        let p = &self.points[pos * self.dim..(pos + 1) * self.dim];
        let mut d = 0.0f32;
        for (a, b) in p.iter().zip(q) {
            let t = a - b;
            d += t * t;
        }
        d
    }

    /// Offers the `k` nearest points to `top`, skipping original index `skip`.
    /// Nodes are visited best-first (smallest box distance first), so the
    /// search stops as soon as no unvisited box can hold a closer point.
    pub(crate) fn knn(&self, q: &[f32], top: &mut TopK, skip: Option<u32>) {
        if self.nodes.is_empty() {
            return;
        }
        let mut heap: BinaryHeap<Visit> = BinaryHeap::with_capacity(64);
        heap.push(Visit { bound: 0.0, id: 0 });
        while let Some(Visit { bound, id }) = heap.pop() {
            if bound > top.worst() {
                break;
            }
            let node = &self.nodes[id as usize];
            if node.left == u32::MAX {
                for pos in node.start as usize..node.end as usize {
                    let index = self.order[pos];
                    if Some(index) == skip {
                        continue;
                    }
                    let d = self.dist_sq(pos, q);
                    top.offer(d, index);
                }
                continue;
            }
            let worst = top.worst();
            for child in [node.left, node.right] {
                let b = self.min_dist_sq(child as usize, q);
                if b <= worst {
                    heap.push(Visit {
                        bound: b,
                        id: child,
                    });
                }
            }
        }
    }

    /// Number of points with squared distance `≤ r_sq` to `q`, counted up to
    /// `cap` (the result is `min(count, cap)`).
    pub fn count_within(&self, q: &[f32], r_sq: f32, cap: u32) -> u32 {
        if self.nodes.is_empty() || r_sq < 0.0 {
            return 0;
        }
        let mut count = 0u32;
        let mut heap: BinaryHeap<Visit> = BinaryHeap::with_capacity(64);
        heap.push(Visit { bound: 0.0, id: 0 });
        while let Some(Visit { bound, id }) = heap.pop() {
            if count >= cap || bound > r_sq {
                break;
            }
            let i = id as usize;
            let node = &self.nodes[i];
            if self.max_dist_sq(i, q) <= r_sq {
                // Whole box inside. IEEE rounding is monotone, so every point's
                // computed distance is at most the computed corner distance:
                // the count equals a scan's.
                count += node.end - node.start;
                continue;
            }
            if node.left == u32::MAX {
                count += (node.start as usize..node.end as usize)
                    .filter(|&pos| self.dist_sq(pos, q) <= r_sq)
                    .count() as u32;
                continue;
            }
            for child in [node.left, node.right] {
                let b = self.min_dist_sq(child as usize, q);
                if b <= r_sq {
                    heap.push(Visit {
                        bound: b,
                        id: child,
                    });
                }
            }
        }
        count.min(cap)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::ExactIndex;
    use crate::rng::SplitMix64;

    #[test]
    fn equals_a_full_scan_with_ties_and_counts() {
        let mut rng = SplitMix64::new(9);
        for &(n, dim) in &[(1usize, 2usize), (50, 3), (3000, 5), (2000, 12)] {
            let mut pts: Vec<f32> = (0..n * dim)
                .map(|_| (rng.normal() * 3.0).round() as f32 / 2.0)
                .collect();
            // duplicate block to force ties
            if n > 10 {
                let first: Vec<f32> = pts[..dim].to_vec();
                for r in 1..5 {
                    pts[r * dim..(r + 1) * dim].copy_from_slice(&first);
                }
            }
            let tree = KdTree::build(&pts, dim);
            let scan = ExactIndex::new_scan(pts.clone(), dim);
            for t in 0..50 {
                let q: Vec<f32> = (0..dim).map(|_| (rng.normal() * 4.0) as f32).collect();
                let k = 1 + t % 12;
                let mut top = TopK::new(k);
                tree.knn(&q, &mut top, None);
                let want = scan.search(&q, k, None, Some(2.5));
                assert_eq!(top.into_neighbours(), want.neighbours);
                assert_eq!(
                    tree.count_within(&q, 2.5 * 2.5, u32::MAX)
                        .min(crate::index::exact::SUPPORT_CAP),
                    want.within
                );
                assert_eq!(tree.count_within(&q, 2.5 * 2.5, 3), want.within.min(3));
            }
        }
    }
}
