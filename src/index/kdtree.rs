//! An exact k-d tree for low-dimensional embeddings.
//!
//! Built by median splits on the widest bounding-box side. Search is depth
//! first, nearer child first, with the incremental lower bound of Arya and
//! Mount: the squared distance from the query to a node is tracked per
//! dimension, and crossing a split only replaces that dimension's term, so
//! pruning a child costs O(1) instead of O(dim). Every node also keeps its
//! bounding box, whose farthest corner lets a radius count take whole subtrees.
//!
//! Distances are computed exactly as by a full scan (same coordinate order,
//! `f32`), and pruning keeps a margin above the rounding error of both the
//! bound and the distances, so results are identical to the scan, ties
//! included (broken by the lower original index).

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::TopK;

/// Points per leaf.
const LEAF_SIZE: usize = 32;
/// Marks a leaf in [`Node::split`].
const LEAF: u32 = u32::MAX;
/// Absolute margin on pruning bounds (covers underflow of tiny squared differences).
const ABS_MARGIN: f64 = 1e-36;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Node {
    /// First point under the node (tree order).
    start: u32,
    /// One past the last point under the node.
    end: u32,
    /// Left child (internal nodes).
    a: u32,
    /// Right child (internal nodes).
    b: u32,
    /// Split dimension, or [`LEAF`].
    split: u32,
    /// Largest coordinate of the left child along `split`.
    cut_left: f32,
    /// Smallest coordinate of the right child along `split`.
    cut_right: f32,
}

/// Relative margin on pruning bounds in dimension `dim` (see [`KdTree`]'s `slack`).
fn slack_for(dim: usize) -> f64 {
    (dim as f64 + 4.0) * f32::EPSILON as f64
}

/// Subtrees at least this large are built in parallel.
const PARALLEL_BUILD_MIN: usize = 32_768;

/// Nodes and boxes of a subtree, child ids local to it (root = 0).
#[derive(Debug, Default)]
struct Subtree {
    nodes: Vec<Node>,
    boxes: Vec<f32>,
}

impl Subtree {
    /// Appends `other`, shifting its node ids and point ranges.
    fn append(&mut self, other: Subtree, point_offset: u32) -> u32 {
        let base = self.nodes.len() as u32;
        self.nodes.extend(other.nodes.into_iter().map(|mut nd| {
            nd.start += point_offset;
            nd.end += point_offset;
            if nd.split != LEAF {
                nd.a += base;
                nd.b += base;
            }
            nd
        }));
        self.boxes.extend(other.boxes);
        base
    }
}

/// A subtree's rows (row-major, `dim` columns) with their original indices,
/// in one of two buffers of the same size; the other is scratch space.
struct Rows<'a> {
    points: &'a mut [f32],
    order: &'a mut [u32],
    scratch_points: &'a mut [f32],
    scratch_order: &'a mut [u32],
    /// Whether `points` is the tree's scratch buffer (leaves found there
    /// are copied to the main one).
    in_scratch: bool,
}

impl<'a> Rows<'a> {
    /// The first `mid` rows and the rest.
    fn split(self, mid: usize, dim: usize) -> (Rows<'a>, Rows<'a>) {
        let (p0, p1) = self.points.split_at_mut(mid * dim);
        let (o0, o1) = self.order.split_at_mut(mid);
        let (sp0, sp1) = self.scratch_points.split_at_mut(mid * dim);
        let (so0, so1) = self.scratch_order.split_at_mut(mid);
        (
            Rows {
                points: p0,
                order: o0,
                scratch_points: sp0,
                scratch_order: so0,
                in_scratch: self.in_scratch,
            },
            Rows {
                points: p1,
                order: o1,
                scratch_points: sp1,
                scratch_order: so1,
                in_scratch: self.in_scratch,
            },
        )
    }

    /// The same rows with the buffers' roles exchanged.
    fn swap(self) -> Rows<'a> {
        Rows {
            points: self.scratch_points,
            order: self.scratch_order,
            scratch_points: self.points,
            scratch_order: self.order,
            in_scratch: !self.in_scratch,
        }
    }

    /// Writes the rows, as one leaf block stored column by column, with
    /// their original indices, to the main buffer.
    fn store_leaf(self, dim: usize) {
        let m = self.order.len();
        let mut block = vec![0.0f32; m * dim];
        for (i, p) in self.points.chunks_exact(dim).enumerate() {
            for (d, &x) in p.iter().enumerate() {
                block[d * m + i] = x;
            }
        }
        if self.in_scratch {
            self.scratch_points.copy_from_slice(&block);
            self.scratch_order.copy_from_slice(self.order);
        } else {
            self.points.copy_from_slice(&block);
        }
    }
}

/// Bounding box of row-major points: minima then maxima (`2 × dim`).
fn bounding_box(points: &[f32], dim: usize) -> Vec<f32> {
    let mut b = [vec![f32::INFINITY; dim], vec![f32::NEG_INFINITY; dim]].concat();
    for p in points.chunks_exact(dim) {
        extend_box(&mut b, p);
    }
    b
}

/// Grows box `b` (minima then maxima) to hold point `p`.
#[inline]
fn extend_box(b: &mut [f32], p: &[f32]) {
    let (lo, hi) = b.split_at_mut(p.len());
    for ((l, h), &x) in lo.iter_mut().zip(hi.iter_mut()).zip(p) {
        *l = l.min(x);
        *h = h.max(x);
    }
}

/// Builds the subtree over `rows`, whose bounding box is `bbox`. Each split
/// moves the rows, in tree order, to the other buffer (contiguous rows, so
/// every pass over a node reads memory in order) and gives the children's
/// boxes on the way; each leaf ends in the main buffer as a block stored
/// column by column. Point ranges in the result are local (from 0).
fn build_subtree(rows: Rows<'_>, dim: usize, bbox: Vec<f32>) -> Subtree {
    let len = rows.order.len();
    let (lo, hi) = bbox.split_at(dim);
    let split = (0..dim)
        .max_by(|&a, &b| (hi[a] - lo[a]).total_cmp(&(hi[b] - lo[b])))
        .unwrap_or(0);
    // Leaves, and sets of identical points kept as one leaf.
    let leaf = len <= LEAF_SIZE || hi[split] - lo[split] <= 0.0;
    let mut sub = Subtree {
        nodes: vec![Node {
            start: 0,
            end: len as u32,
            a: 0,
            b: 0,
            split: LEAF,
            cut_left: 0.0,
            cut_right: 0.0,
        }],
        boxes: bbox,
    };
    if leaf {
        rows.store_leaf(dim);
        return sub;
    }
    // Median by (coordinate, original index): a total order, so the halves
    // do not depend on the order the rows arrive in.
    let mid = len / 2;
    let mut keys: Vec<(f32, u32, u32)> = (0..len)
        .map(|r| (rows.points[r * dim + split], rows.order[r], r as u32))
        .collect();
    keys.select_nth_unstable_by(mid, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut boxes = [bounding_box(&[], dim), bounding_box(&[], dim)];
    for (to, &(_, original, from)) in keys.iter().enumerate() {
        let from = from as usize;
        let p = &rows.points[from * dim..(from + 1) * dim];
        let q = &mut rows.scratch_points[to * dim..(to + 1) * dim];
        // One loop copies the row and grows its half's box (a bare copy of
        // a few floats would be a call to memmove per row).
        let (lo, hi) = boxes[usize::from(to >= mid)].split_at_mut(dim);
        for d in 0..dim {
            let x = p[d];
            q[d] = x;
            lo[d] = lo[d].min(x);
            hi[d] = hi[d].max(x);
        }
        rows.scratch_order[to] = original;
    }
    drop(keys);
    let [left_box, right_box] = boxes;
    let (left_rows, right_rows) = rows.swap().split(mid, dim);
    let (left, right) = if len >= PARALLEL_BUILD_MIN {
        rayon::join(
            || build_subtree(left_rows, dim, left_box),
            || build_subtree(right_rows, dim, right_box),
        )
    } else {
        (
            build_subtree(left_rows, dim, left_box),
            build_subtree(right_rows, dim, right_box),
        )
    };
    let cut_left = left.boxes[dim + split];
    let cut_right = right.boxes[split];
    let a = sub.append(left, 0);
    let b = sub.append(right, mid as u32);
    sub.nodes[0] = Node {
        start: 0,
        end: len as u32,
        a,
        b,
        split: split as u32,
        cut_left,
        cut_right,
    };
    sub
}

/// Bit `i` set where `block[i] ≤ limit` (NaN never is); `block` holds at
/// most 32 values.
#[inline]
fn at_most(block: &[f32], limit: f32) -> u32 {
    block
        .iter()
        .enumerate()
        .fold(0u32, |m, (i, &d)| m | (u32::from(d <= limit) << i))
}

/// A radius count carried along a nearest-neighbour search.
#[derive(Debug, Clone, Copy)]
struct Counter {
    r_sq: f32,
    cap: u32,
    count: u32,
}

impl Counter {
    /// Counts nothing.
    const NONE: Counter = Counter {
        r_sq: 0.0,
        cap: 0,
        count: 0,
    };

    #[inline]
    fn active(&self) -> bool {
        self.count < self.cap
    }

    /// Squared distance up to which a subtree must still be visited.
    #[inline]
    fn limit(&self, worst: f32) -> f32 {
        if self.active() {
            worst.max(self.r_sq)
        } else {
            worst
        }
    }
}

/// A k-d tree over row-major `f32` points.
#[derive(Debug, Clone, PartialEq)]
pub struct KdTree {
    dim: usize,
    /// Points in tree order, each leaf's block stored column by column (the
    /// `dim` coordinates of its points one after the other), so a leaf's
    /// distances are computed for many points at once.
    points: Vec<f32>,
    /// Original row index of each point in tree order.
    order: Vec<u32>,
    nodes: Vec<Node>,
    /// Bounding boxes, `2 × dim` per node (min then max).
    boxes: Vec<f32>,
    /// Relative margin on pruning bounds: a bound must exceed the current
    /// worst distance by more than the rounding error of an `f32` distance.
    slack: f64,
    /// Per node, a lower bound on the computed squared distance from any
    /// query to the box's farthest corner: a quarter of the squared
    /// diagonal, less the rounding margin. A box whose bound exceeds the
    /// support radius cannot lie inside it, and its corner is not computed.
    reach_floor: Vec<f32>,
}

/// [`KdTree::reach_floor`] of boxes (`2 × dim` per node): per dimension the
/// farthest corner is at least half the box's width away, so the squared
/// distance to it is at least `Σ (width / 2)²`; less the `f32` sum's
/// relative rounding error (`slack`), rounded down.
fn reach_floors(boxes: &[f32], dim: usize, slack: f64) -> Vec<f32> {
    if dim == 0 {
        return Vec::new();
    }
    boxes
        .chunks_exact(2 * dim)
        .map(|b| {
            let (lo, hi) = b.split_at(dim);
            let half: f64 = lo
                .iter()
                .zip(hi)
                .map(|(&l, &h)| {
                    let w = (f64::from(h) - f64::from(l)) / 2.0;
                    w * w
                })
                .sum();
            let floor = half * (1.0 - slack) - ABS_MARGIN;
            if floor <= 0.0 {
                0.0
            } else {
                (floor as f32).next_down()
            }
        })
        .collect()
}

impl KdTree {
    /// Builds the tree over `points` (row-major, `dim` columns). Subtrees of
    /// at least 32,768 points are built in parallel; the tree
    /// does not depend on the number of threads.
    pub fn build(points: &[f32], dim: usize) -> KdTree {
        let n = points.len() / dim.max(1);
        // Room for the padding `assemble` adds.
        let mut tree_points = Vec::with_capacity(n * dim + LEAF_SIZE);
        tree_points.extend_from_slice(&points[..n * dim]);
        let mut order: Vec<u32> = (0..n as u32).collect();
        let sub = if n > 0 {
            let mut scratch_points = vec![0.0f32; n * dim];
            let mut scratch_order = vec![0u32; n];
            let bbox = bounding_box(&tree_points, dim);
            let rows = Rows {
                points: &mut tree_points,
                order: &mut order,
                scratch_points: &mut scratch_points,
                scratch_order: &mut scratch_order,
                in_scratch: false,
            };
            build_subtree(rows, dim, bbox)
        } else {
            Subtree::default()
        };
        // The leaf blocks, column by column, now fill `tree_points`.
        Self::assemble(dim, tree_points, order, sub.nodes, sub.boxes)
    }

    /// The tree of its parts: `columns` holds the leaf blocks column by
    /// column (`n × dim` values), padded here by one leaf block of zeros
    /// (the fixed-width leaf scan reads past a leaf's end); the pruning
    /// slack and the nodes' reach floors are derived from `dim` and the boxes.
    fn assemble(
        dim: usize,
        mut columns: Vec<f32>,
        order: Vec<u32>,
        nodes: Vec<Node>,
        boxes: Vec<f32>,
    ) -> KdTree {
        columns.resize(columns.len() + LEAF_SIZE, 0.0);
        let slack = slack_for(dim);
        KdTree {
            dim,
            points: columns,
            order,
            reach_floor: reach_floors(&boxes, dim, slack),
            nodes,
            boxes,
            slack,
        }
    }

    /// Per-dimension squared distances from `q` to the root box, and their sum.
    fn root_offsets(&self, q: &[f32]) -> (Vec<f64>, f64) {
        let dim = self.dim;
        let b = &self.boxes[..2 * dim];
        let mut off = vec![0.0f64; dim];
        let mut rd = 0.0;
        for d in 0..dim {
            let v = q[d];
            let t = if v < b[d] {
                b[d] - v
            } else if v > b[dim + d] {
                v - b[dim + d]
            } else {
                0.0
            } as f64;
            off[d] = t * t;
            rd += off[d];
        }
        (off, rd)
    }

    /// Whether a subtree at squared lower bound `bound` may hold a point at
    /// squared distance `≤ limit` (conservatively: `true` within rounding).
    #[inline]
    fn may_reach(&self, bound: f64, limit: f32) -> bool {
        bound * (1.0 - self.slack) - ABS_MARGIN <= limit as f64
    }

    /// Squared distance from `q` to the farthest corner of node `id`'s box.
    #[inline]
    fn max_dist_sq(&self, id: usize, q: &[f32]) -> f32 {
        let dim = self.dim;
        let b = &self.boxes[id * 2 * dim..(id + 1) * 2 * dim];
        let mut s = 0.0f32;
        for d in 0..dim {
            // The larger of the two gaps (boxes and queries are finite, so
            // no NaN: a plain comparison, not `f32::max`).
            let (lo, hi) = ((q[d] - b[d]).abs(), (b[dim + d] - q[d]).abs());
            let t = if lo > hi { lo } else { hi };
            s += t * t;
        }
        s
    }

    /// Squared distances from `q` to up to [`LEAF_SIZE`] points of the leaf
    /// block starting at tree position `start` with `m` points, from its
    /// `from`-th point on; returns how many were written to `acc`. Each
    /// distance is summed over coordinates in order, exactly as a scan does.
    #[inline]
    fn leaf_block(
        &self,
        start: usize,
        m: usize,
        from: usize,
        q: &[f32],
        acc: &mut [f32; LEAF_SIZE],
    ) -> usize {
        let len = (m - from).min(LEAF_SIZE);
        let base = start * self.dim + from;
        // All `LEAF_SIZE` lanes are computed (fixed width: the sums stay in
        // registers); lanes past `len` read the next column or the padding
        // after the last leaf, and the caller ignores them.
        *acc = crate::cpu::widest(
            #[inline(always)]
            || {
                let mut sums = [0.0f32; LEAF_SIZE];
                for (d, &qd) in q.iter().enumerate().take(self.dim) {
                    let col = &self.points[base + d * m..base + d * m + LEAF_SIZE];
                    for (a, &x) in sums.iter_mut().zip(col) {
                        let t = x - qd;
                        *a += t * t;
                    }
                }
                sums
            },
        );
        len
    }

    /// The nearer and farther child of internal node `node` for query
    /// coordinate `v`, and the gap from `v` to the farther child along the split.
    #[inline]
    fn children(node: &Node, v: f32) -> (u32, u32, f64) {
        if v - node.cut_left < node.cut_right - v {
            (node.a, node.b, (node.cut_right - v).max(0.0) as f64)
        } else {
            (node.b, node.a, (v - node.cut_left).max(0.0) as f64)
        }
    }

    /// Every point as `(leaf, original index)` in tree order: the leaves in
    /// depth-first order (ascending ids), each leaf's points as stored.
    pub fn leaf_order(&self) -> Vec<(u32, u32)> {
        let mut out = Vec::with_capacity(self.order.len());
        for (id, node) in self.nodes.iter().enumerate() {
            if node.split == LEAF {
                for pos in node.start..node.end {
                    out.push((id as u32, self.order[pos as usize]));
                }
            }
        }
        out
    }

    /// The leaf a query descends to (always the nearer child). Leaves are
    /// numbered in depth-first order, so nearby queries get nearby numbers:
    /// searching queries sorted by it reuses cached reference points.
    pub fn leaf_of(&self, q: &[f32]) -> u32 {
        let mut id = 0u32;
        while let Some(node) = self.nodes.get(id as usize) {
            if node.split == LEAF {
                return id;
            }
            id = Self::children(node, q[node.split as usize]).0;
        }
        id
    }

    /// Points held by the leaves whose boxes come within squared distance
    /// `r_sq` of `q`: what any exact search for the points at that distance
    /// must look at, a measure of its cost that does not depend on the
    /// machine (the search itself, pruning as it goes, may look at fewer).
    pub(crate) fn points_within_reach(&self, q: &[f32], r_sq: f64) -> u64 {
        let dim = self.dim;
        let mut total = 0u64;
        let mut stack = vec![0u32];
        while let Some(id) = stack.pop() {
            let Some(node) = self.nodes.get(id as usize) else {
                continue;
            };
            let b = &self.boxes[id as usize * 2 * dim..(id as usize + 1) * 2 * dim];
            let gap: f64 = (0..dim)
                .map(|d| {
                    let v = f64::from(q[d]);
                    let t = (f64::from(b[d]) - v)
                        .max(v - f64::from(b[dim + d]))
                        .max(0.0);
                    t * t
                })
                .sum();
            if gap > r_sq {
                continue;
            }
            if node.split == LEAF {
                total += u64::from(node.end - node.start);
            } else {
                stack.extend([node.a, node.b]);
            }
        }
        total
    }

    /// Offers the `k` nearest points to `top`, skipping original index `skip`.
    #[cfg(test)]
    pub(crate) fn knn(&self, q: &[f32], top: &mut TopK, skip: Option<u32>) {
        self.knn_count(q, top, skip, 0.0, 0);
    }

    /// [`KdTree::knn`] and, in the same traversal, the number of points
    /// (`skip` included) with squared distance `≤ r_sq`, counted up to `cap`
    /// (the result is `min(count, cap)`; `cap = 0` counts nothing).
    pub(crate) fn knn_count(
        &self,
        q: &[f32],
        top: &mut TopK,
        skip: Option<u32>,
        r_sq: f32,
        cap: u32,
    ) -> u32 {
        if self.nodes.is_empty() {
            return 0;
        }
        crate::cpu::clear_upper_vector_state();
        let cap = if r_sq.is_nan() || r_sq < 0.0 { 0 } else { cap };
        let mut counter = Counter {
            r_sq,
            cap,
            count: 0,
        };
        let (mut off, rd) = self.root_offsets(q);
        if self.may_reach(rd, counter.limit(top.worst())) {
            self.knn_node(0, q, rd, &mut off, top, skip, &mut counter);
        }
        counter.count.min(cap)
    }

    #[allow(clippy::too_many_arguments)]
    fn knn_node(
        &self,
        id: u32,
        q: &[f32],
        rd: f64,
        off: &mut [f64],
        top: &mut TopK,
        skip: Option<u32>,
        counter: &mut Counter,
    ) {
        let node = &self.nodes[id as usize];
        let mut counting = counter.active();
        if counting
            && self.reach_floor[id as usize] <= counter.r_sq
            && self.max_dist_sq(id as usize, q) <= counter.r_sq
        {
            // Whole box inside the radius. IEEE rounding is monotone, so every
            // point's computed distance is at most the computed corner
            // distance: the count equals a scan's.
            counter.count += node.end - node.start;
            counting = false;
            if !self.may_reach(rd, top.worst()) {
                return;
            }
        }
        if node.split == LEAF {
            let (start, m) = (node.start as usize, (node.end - node.start) as usize);
            let mut acc = [0.0f32; LEAF_SIZE];
            let mut from = 0;
            while from < m {
                let len = self.leaf_block(start, m, from, q, &mut acc);
                let block = &acc[..len];
                if counting {
                    counter.count += at_most(block, counter.r_sq).count_ones();
                }
                // Only points that can enter the list are offered (the bound
                // only tightens while offering, so none is missed).
                let mut candidates = at_most(block, top.worst());
                while candidates != 0 {
                    let i = candidates.trailing_zeros() as usize;
                    candidates &= candidates - 1;
                    let index = self.order[start + from + i];
                    if Some(index) != skip {
                        top.offer(block[i], index);
                    }
                }
                from += len;
            }
            return;
        }
        let s = node.split as usize;
        let (near, far, gap) = Self::children(node, q[s]);
        // Below a node counted whole, nothing more is counted.
        let mut none = Counter::NONE;
        let counter = if counting { counter } else { &mut none };
        self.knn_node(near, q, rd, off, top, skip, counter);
        let old = off[s];
        let new = (gap * gap).max(old);
        let rd_far = rd - old + new;
        if self.may_reach(rd_far, counter.limit(top.worst())) {
            off[s] = new;
            self.knn_node(far, q, rd_far, off, top, skip, counter);
            off[s] = old;
        }
    }
}

/// The structure of a built [`KdTree`] without its points: what a model file
/// stores so that loading does not rebuild the tree. Restored over the same
/// points by [`KdTree::from_layout`], which checks every property the search
/// relies on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeLayout {
    /// Original row of each point in tree order.
    order: Vec<u32>,
    nodes: Vec<Node>,
    /// Bounding boxes, `2 × dim` per node (minima then maxima).
    boxes: Vec<f32>,
}

/// Words per node in [`TreeLayout::node_words`].
pub(crate) const NODE_WORDS: usize = 7;

impl TreeLayout {
    /// Original row of each point in tree order.
    pub(crate) fn order(&self) -> &[u32] {
        &self.order
    }

    /// Each node as [`NODE_WORDS`] words (range, children, split, and the
    /// cuts' bits), node after node.
    pub(crate) fn node_words(&self) -> Vec<u32> {
        self.nodes
            .iter()
            .flat_map(|n| {
                [
                    n.start,
                    n.end,
                    n.a,
                    n.b,
                    n.split,
                    n.cut_left.to_bits(),
                    n.cut_right.to_bits(),
                ]
            })
            .collect()
    }

    /// Bounding boxes, `2 × dim` per node (minima then maxima).
    pub(crate) fn boxes(&self) -> &[f32] {
        &self.boxes
    }

    /// The layout of these parts (as [`TreeLayout::order`],
    /// [`TreeLayout::node_words`], [`TreeLayout::boxes`] give them), unchecked:
    /// [`KdTree::from_layout`] checks it against the points.
    ///
    /// # Errors
    /// A message when the node words are not whole nodes.
    pub(crate) fn from_parts(
        order: Vec<u32>,
        node_words: &[u32],
        boxes: Vec<f32>,
    ) -> Result<TreeLayout, String> {
        if !node_words.len().is_multiple_of(NODE_WORDS) {
            return Err(format!(
                "{} node words are not whole nodes of {NODE_WORDS}",
                node_words.len()
            ));
        }
        let nodes = node_words
            .chunks_exact(NODE_WORDS)
            .map(|w| Node {
                start: w[0],
                end: w[1],
                a: w[2],
                b: w[3],
                split: w[4],
                cut_left: f32::from_bits(w[5]),
                cut_right: f32::from_bits(w[6]),
            })
            .collect();
        Ok(TreeLayout {
            order,
            nodes,
            boxes,
        })
    }
}

impl KdTree {
    /// The tree's structure, for storing.
    pub fn layout(&self) -> TreeLayout {
        TreeLayout {
            order: self.order.clone(),
            nodes: self.nodes.clone(),
            boxes: self.boxes.clone(),
        }
    }

    /// The tree of `layout` over `points` (row-major, `dim` columns, in
    /// original row order), which must be the points it was built over.
    ///
    /// # Errors
    /// A message naming the first broken property: `order` not a permutation
    /// of the rows, a node's range or children inconsistent, or a box or cut
    /// that does not bound its points. A layout that passes gives the same
    /// results as a scan (the bounds the search prunes with are true).
    pub fn from_layout(points: &[f32], dim: usize, layout: TreeLayout) -> Result<KdTree, String> {
        let TreeLayout {
            order,
            nodes,
            boxes,
        } = layout;
        let n = points.len() / dim.max(1);
        if dim == 0 || order.len() != n || points.len() != n * dim {
            return Err(format!(
                "{} points in tree order for {n} rows of dimension {dim}",
                order.len()
            ));
        }
        let mut seen = vec![false; n];
        for &r in &order {
            match seen.get_mut(r as usize) {
                Some(s) if !*s => *s = true,
                _ => return Err(format!("row {r} out of range or twice in the tree order")),
            }
        }
        if boxes.len() != nodes.len() * 2 * dim || (n > 0) == nodes.is_empty() {
            return Err(format!(
                "{} nodes with {} box values for {n} points",
                nodes.len(),
                boxes.len()
            ));
        }
        let boxed = |id: usize| &boxes[id * 2 * dim..(id + 1) * 2 * dim];
        let mut leaves: Vec<(usize, usize, usize)> = Vec::new();
        for (id, node) in nodes.iter().enumerate() {
            let (start, end) = (node.start as usize, node.end as usize);
            if start >= end || end > n || (id == 0 && (start, end) != (0, n)) {
                return Err(format!("node {id} has range {start}..{end} of {n} points"));
            }
            if node.split == LEAF {
                leaves.push((start, end, id));
                continue;
            }
            let (lo, hi) = boxed(id).split_at(dim);
            let (a, c, split) = (node.a as usize, node.b as usize, node.split as usize);
            if a <= id || c <= id || a >= nodes.len() || c >= nodes.len() || split >= dim {
                return Err(format!("node {id} has children {a}, {c} split on {split}"));
            }
            if nodes[a].start as usize != start
                || nodes[a].end != nodes[c].start
                || nodes[c].end as usize != end
            {
                return Err(format!("node {id}'s children do not split its range"));
            }
            for child in [a, c] {
                let (clo, chi) = boxed(child).split_at(dim);
                if (0..dim).any(|d| !(lo[d] <= clo[d] && chi[d] <= hi[d])) {
                    return Err(format!("node {id}'s box does not hold child {child}'s"));
                }
            }
            if !(boxed(a)[dim + split] <= node.cut_left && node.cut_right <= boxed(c)[split]) {
                return Err(format!("node {id}'s cuts do not bound its children"));
            }
        }
        // The leaves tile the tree order (so each is reached from the root
        // exactly once); each gathers its points, in parallel.
        leaves.sort_unstable();
        // Room for the padding `assemble` adds.
        let mut columns = Vec::with_capacity(n * dim + LEAF_SIZE);
        columns.resize(n * dim, 0.0f32);
        let mut blocks = Vec::with_capacity(leaves.len());
        let mut rest: &mut [f32] = &mut columns;
        let mut next = 0;
        for &(start, end, id) in &leaves {
            if start != next {
                return Err(format!("leaf {id} starts at {start}, not {next}"));
            }
            let (block, tail) = rest.split_at_mut((end - start) * dim);
            blocks.push((start, end, id, block));
            rest = tail;
            next = end;
        }
        if next != n {
            return Err(format!("the leaves end at {next} of {n} points"));
        }
        let gathered: Vec<Result<(), String>> = blocks
            .into_par_iter()
            .map(|(start, end, id, block)| {
                let (lo, hi) = boxed(id).split_at(dim);
                let m = end - start;
                for (i, &r) in order[start..end].iter().enumerate() {
                    let p = &points[r as usize * dim..(r as usize + 1) * dim];
                    for d in 0..dim {
                        // NaN fails too.
                        if !(lo[d] <= p[d] && p[d] <= hi[d]) {
                            return Err(format!("leaf {id}'s box does not hold row {r}"));
                        }
                        block[d * m + i] = p[d];
                    }
                }
                Ok(())
            })
            .collect();
        gathered.into_iter().collect::<Result<(), String>>()?;
        Ok(Self::assemble(dim, columns, order, nodes, boxes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::ExactIndex;
    use crate::rng::SplitMix64;

    /// Points within squared distance `r_sq` of `q`, summed in the scan's order.
    fn brute_count(pts: &[f32], dim: usize, q: &[f32], r_sq: f32) -> u32 {
        pts.chunks_exact(dim)
            .filter(|p| crate::index::squared_distance(p, q) <= r_sq)
            .count() as u32
    }

    #[test]
    fn a_stored_layout_restores_the_same_tree_and_a_broken_one_is_refused() {
        let mut rng = SplitMix64::new(4);
        let dim = 5;
        // Clustered points with a block of 70 identical ones (a leaf > 32).
        let mut pts: Vec<f32> = (0..3000 * dim)
            .map(|i| (rng.normal() * 2.0) as f32 + (i % 7) as f32)
            .collect();
        for r in 100..170 {
            pts[r * dim..(r + 1) * dim].copy_from_slice(&[1.0, 2.0, 3.0, 4.0, 5.0]);
        }
        let tree = KdTree::build(&pts, dim);
        let back = KdTree::from_layout(&pts, dim, tree.layout()).expect("a valid layout");
        assert_eq!(back, tree);

        let refused = |edit: &dyn Fn(&mut TreeLayout)| {
            let mut layout = tree.layout();
            edit(&mut layout);
            KdTree::from_layout(&pts, dim, layout).is_err()
        };
        let leaf = tree
            .nodes
            .iter()
            .position(|nd| nd.split == LEAF)
            .unwrap_or(0);
        let inner = tree
            .nodes
            .iter()
            .position(|nd| nd.split != LEAF)
            .unwrap_or(0);
        assert!(refused(&|l| l.order[5] = l.order[6]), "row twice");
        assert!(refused(&|l| l.order[5] = 3000), "row out of range");
        assert!(
            refused(&|l| {
                l.order.pop();
            }),
            "short order"
        );
        assert!(
            refused(&|l| l.boxes.truncate(l.boxes.len() - 1)),
            "short boxes"
        );
        assert!(
            refused(&|l| l.boxes[leaf * 2 * dim] += 50.0),
            "leaf box too small"
        );
        assert!(
            refused(&|l| l.nodes[inner].cut_left -= 50.0),
            "cut inside the left child"
        );
        assert!(
            refused(&|l| l.nodes[inner].a = 0),
            "child before its parent"
        );
        assert!(
            refused(&|l| l.nodes[inner].b = u32::MAX - 1),
            "child out of range"
        );
        assert!(
            refused(&|l| l.nodes[0].end -= 1),
            "root short of the points"
        );
        assert!(
            refused(&|l| l.nodes[inner].split = dim as u32),
            "split past the dimension"
        );
        // Rows exchanged between leaves land outside their boxes.
        assert!(refused(&|l| l.order.swap(0, 2999)), "rows exchanged");
    }

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
                // Radius counts against a brute-force count in the scan's
                // summation order, with and without a skipped point.
                let r_sq = 2.5f32 * 2.5;
                let all = brute_count(&pts, dim, &q, r_sq);
                assert_eq!(
                    all.min(crate::index::exact::SUPPORT_CAP),
                    scan.search(&q, k, None, Some(2.5)).within
                );
                let skip = (t as u32 * 7) % n as u32;
                for cap in [0u32, 2, 3, 101, u32::MAX] {
                    for skip in [None, Some(skip)] {
                        let mut top = TopK::new(k);
                        let count = tree.knn_count(&q, &mut top, skip, r_sq, cap);
                        let want = scan.search(&q, k, skip, None);
                        assert_eq!(top.into_neighbours(), want.neighbours);
                        assert_eq!(count, all.min(cap), "cap {cap}, skip {skip:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_reach_floor_never_exceeds_the_farthest_corner() {
        // The floor lets the search skip a box's farthest corner; it must be
        // a lower bound for every query, or a box inside the radius would
        // be counted point by point (same count, but the bound would lie).
        let mut rng = SplitMix64::new(4);
        for &(n, dim, scale) in &[(500usize, 2usize, 1e-3), (3000, 8, 1.0), (2000, 16, 1e4)] {
            let pts: Vec<f32> = (0..n * dim)
                .map(|_| (rng.normal() * scale) as f32)
                .collect();
            let tree = KdTree::build(&pts, dim);
            assert_eq!(tree.reach_floor.len(), tree.nodes.len());
            for _ in 0..40 {
                let q: Vec<f32> = (0..dim).map(|_| (rng.normal() * scale) as f32).collect();
                for id in 0..tree.nodes.len() {
                    assert!(
                        tree.reach_floor[id] <= tree.max_dist_sq(id, &q),
                        "node {id}"
                    );
                }
            }
        }
    }

    #[test]
    fn parallel_build_equals_a_full_scan() {
        let mut rng = SplitMix64::new(3);
        let (n, dim) = (3 * PARALLEL_BUILD_MIN, 4);
        let pts: Vec<f32> = (0..n * dim).map(|_| rng.normal() as f32).collect();
        let tree = KdTree::build(&pts, dim);
        assert_eq!(tree.order.len(), n);
        let mut seen = vec![false; n];
        for &i in &tree.order {
            seen[i as usize] = true;
        }
        assert!(seen.iter().all(|&s| s), "every point once");
        let scan = ExactIndex::new_scan(pts.clone(), dim);
        for _ in 0..20 {
            let q: Vec<f32> = (0..dim).map(|_| (rng.normal() * 2.0) as f32).collect();
            let mut top = TopK::new(7);
            let count = tree.knn_count(&q, &mut top, None, 0.25, 100);
            let want = scan.search(&q, 7, None, Some(0.5));
            assert_eq!(top.into_neighbours(), want.neighbours);
            assert_eq!(count, want.within);
        }
    }

    #[test]
    fn leaves_of_many_identical_points_equal_a_full_scan() {
        // 150 copies of one point cannot be split: they form one leaf larger
        // than LEAF_SIZE, searched block by block.
        let mut rng = SplitMix64::new(4);
        let dim = 3;
        let mut pts: Vec<f32> = (0..1000 * dim).map(|_| rng.normal() as f32).collect();
        for r in 0..150 {
            pts[r * 6 * dim..r * 6 * dim + dim].copy_from_slice(&[0.25, -0.5, 0.125]);
        }
        let tree = KdTree::build(&pts, dim);
        assert!(
            tree.nodes
                .iter()
                .any(|nd| nd.split == LEAF && (nd.end - nd.start) as usize > LEAF_SIZE)
        );
        let scan = ExactIndex::new_scan(pts.clone(), dim);
        for q in [[0.25f32, -0.5, 0.125], [0.3, -0.4, 0.1], [3.0, 3.0, 3.0]] {
            for k in [1, 10, 160] {
                let mut top = TopK::new(k);
                let count = tree.knn_count(&q, &mut top, Some(6), 0.04, 100);
                let want = scan.search(&q, k, Some(6), None);
                assert_eq!(top.into_neighbours(), want.neighbours, "k {k}");
                // Every point within the radius, the skipped one included.
                let all = brute_count(&pts, dim, &q, 0.04);
                assert!(all >= 150 || q[0] > 1.0);
                assert_eq!(count, all.min(100), "k {k}");
            }
        }
    }
}
