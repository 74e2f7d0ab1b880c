//! The graph section of a model file: the arrays of a [`Graph`], written and
//! read as they are (format version 3), and the neighbour records of format
//! version 2, converted to the same arrays on load.
//!
//! Layout in `docs/formats.md` ("The graph section"). Both readers bound every
//! count by the bytes left before allocating, and check every invariant the
//! search relies on ([`Graph::check`]); a corrupt section is an error naming
//! the problem, never a panic. The container's CRC covers the section.

use super::HnswParams;
use super::graph::{Graph, LAYER_LIMIT, Layer, max_list_len};

/// Magic bytes opening a version-3 graph section.
pub const GRAPH_MAGIC: &[u8; 8] = b"NOF1GRPH";
/// Magic bytes opening a version-2 graph section (hnsw_rs's neighbour records).
pub const GRAPH_MAGIC_V2: &[u8; 8] = b"NOF1HNSW";
/// Length of the version-3 section's fixed header (magic, points, dimension,
/// maximum connections, top layer, entry point): the per-point levels start here.
pub const GRAPH_HEADER_LEN: usize = 22;

/// Number of layers hnsw_rs gives a graph built with `params`.
pub(crate) fn layer_count(params: &HnswParams) -> usize {
    params.max_layers.min(LAYER_LIMIT)
}

/// Appends the version-3 section of `graph` (over `dim` search components,
/// built with `max_connections`) to `out`.
///
/// # Errors
/// A message when the graph breaks an invariant ([`Graph::check`]) or does not
/// fit the section's integer widths; a graph built by nof1 never does. `out`
/// is unchanged then.
pub(crate) fn write(
    graph: &Graph,
    dim: usize,
    max_connections: usize,
    out: &mut Vec<u8>,
) -> std::result::Result<(), String> {
    graph.check(max_connections)?;
    let n = u32::try_from(graph.len()).map_err(|_| "too many points".to_string())?;
    let dim = u32::try_from(dim).map_err(|_| format!("cannot store dimension {dim}"))?;
    let m = u8::try_from(max_connections)
        .map_err(|_| format!("cannot store max_connections {max_connections}"))?;
    let top = graph.top() as u8; // < LAYER_LIMIT, checked
    let size = GRAPH_HEADER_LEN
        + graph.len()
        + graph
            .layers
            .iter()
            .map(|l| 4 + 4 * l.rows.len() + 8 + 2 * (l.offsets.len() - 1) + 4 * l.neighbours.len())
            .sum::<usize>();
    out.reserve(size);
    out.extend_from_slice(GRAPH_MAGIC);
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&dim.to_le_bytes());
    out.push(m);
    out.push(top);
    out.extend_from_slice(&graph.entry.to_le_bytes());
    out.extend_from_slice(&graph.levels);
    for (j, layer) in graph.layers.iter().enumerate() {
        if j > 0 {
            // Fewer members than points, checked.
            out.extend_from_slice(&(layer.rows.len() as u32).to_le_bytes());
            for &row in &layer.rows {
                out.extend_from_slice(&row.to_le_bytes());
            }
        }
        out.extend_from_slice(&(layer.neighbours.len() as u64).to_le_bytes());
        for w in layer.offsets.windows(2) {
            // ≤ 2M ≤ 510, checked.
            out.extend_from_slice(&((w[1] - w[0]) as u16).to_le_bytes());
        }
        for &nb in &layer.neighbours {
            out.extend_from_slice(&nb.to_le_bytes());
        }
    }
    Ok(())
}

/// A reader past a section's magic bytes and its point count and dimension,
/// which must match the model's.
fn open<'a>(
    bytes: &'a [u8],
    magic: &[u8],
    n: usize,
    dim: usize,
) -> std::result::Result<Reader<'a>, String> {
    let mut r = Reader::new(bytes);
    if r.take(magic.len())? != magic {
        return Err("the graph section does not start with its magic bytes".into());
    }
    check_points_and_dim(r.u32()? as usize, n, r.u32()? as usize, dim)?;
    Ok(r)
}

/// Reads a version-3 section stored with a model of `n` reference members,
/// `dim` search components and HNSW parameters `params`.
///
/// # Errors
/// A message naming the first problem: a truncation (with its byte offset in
/// the section), a header that does not match the model, a level above the
/// top layer, list lengths that do not add up or exceed hnsw_rs's bounds, a
/// neighbour that is not a row of the layer, bytes after the last layer.
pub(crate) fn parse(
    bytes: &[u8],
    n: usize,
    dim: usize,
    params: &HnswParams,
) -> std::result::Result<Graph, String> {
    let mut r = open(bytes, GRAPH_MAGIC, n, dim)?;
    let m = r.u8()? as usize;
    if m != params.max_connections {
        return Err(format!(
            "the graph has max_connections {m}, its parameters say {}",
            params.max_connections
        ));
    }
    let top = r.u8()? as usize;
    if top >= layer_count(params) {
        return Err(format!(
            "the graph's top layer is {top}, its parameters allow {} layers",
            layer_count(params)
        ));
    }
    let entry = r.u32()?;
    let levels = r.take(n)?.to_vec();
    if let Some((row, l)) = levels.iter().enumerate().find(|&(_, &l)| l as usize > top) {
        return Err(format!(
            "point {row} is in layer {l}, above the top layer {top}"
        ));
    }
    let mut layers = Vec::with_capacity(top + 1);
    for j in 0..=top {
        let rows: Vec<u32> = if j == 0 {
            Vec::new()
        } else {
            let count = r.u32()? as usize;
            r.take_n(count, 4)?
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect()
        };
        let count = if j == 0 { n } else { rows.len() };
        let edges = r.u64()?;
        let degrees = r.take_n(count, 2)?;
        let most = max_list_len(j, m);
        let mut offsets = Vec::with_capacity(count + 1);
        offsets.push(0usize);
        let mut total = 0usize;
        for (rank, d) in degrees.chunks_exact(2).enumerate() {
            let d = u16::from_le_bytes([d[0], d[1]]) as usize;
            if d > most {
                let row = rows.get(rank).map_or(rank, |&r| r as usize);
                return Err(format!(
                    "layer {j}: point {row} has {d} neighbours, at most {most} allowed"
                ));
            }
            total += d;
            offsets.push(total);
        }
        if total as u64 != edges {
            return Err(format!(
                "layer {j}: the list lengths add up to {total}, the layer holds {edges} neighbours"
            ));
        }
        let neighbours: Vec<u32> = r
            .take_n(total, 4)?
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        layers.push(Layer {
            rows,
            offsets,
            neighbours,
        });
    }
    r.finish()?;
    let graph = Graph {
        levels,
        entry,
        layers,
    };
    graph.check(m)?;
    Ok(graph)
}

/// The stored point count and dimension against the model's.
fn check_points_and_dim(
    n_stored: usize,
    n: usize,
    dim_stored: usize,
    dim: usize,
) -> std::result::Result<(), String> {
    if n_stored != n {
        return Err(format!(
            "the graph has {n_stored} points, the reference {n}"
        ));
    }
    if n == 0 || i32::try_from(n).is_err() {
        return Err(format!("cannot load a graph of {n} points"));
    }
    if dim_stored != dim {
        return Err(format!(
            "the graph has dimension {dim_stored}, the model searches {dim} components"
        ));
    }
    Ok(())
}

/// Reads a version-2 section (hnsw_rs's layers and neighbour records, see
/// `docs/formats.md`) and converts it to a [`Graph`]. The stored distances are
/// checked (finite, non-negative) and dropped: the search computes its own.
///
/// # Errors
/// As [`parse`], for the version-2 layout.
pub(crate) fn parse_v2(
    bytes: &[u8],
    n: usize,
    dim: usize,
    params: &HnswParams,
) -> std::result::Result<Graph, String> {
    let mut r = open(bytes, GRAPH_MAGIC_V2, n, dim)?;
    let layers = r.u8()? as usize;
    if layers == 0 || layers != layer_count(params) {
        return Err(format!(
            "the graph has {layers} layers, its parameters say {}",
            layer_count(params)
        ));
    }
    let m = r.u8()? as usize;
    if m != params.max_connections {
        return Err(format!(
            "the graph has max_connections {m}, its parameters say {}",
            params.max_connections
        ));
    }
    let levels = r.take(n)?.to_vec();
    if let Some((row, l)) = levels
        .iter()
        .enumerate()
        .find(|&(_, &l)| l as usize >= layers)
    {
        return Err(format!("point {row} is in layer {l} of {layers}"));
    }
    // Graph order: the rows of layer 0 ascending, then layer 1's, …
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.sort_by_key(|&row| levels[row as usize]);
    let top = levels.iter().copied().max().unwrap_or(0) as usize;
    let mut lists: Vec<Vec<Vec<u32>>> = vec![Vec::new(); n];
    for &row in &order {
        let used = r.u8()? as usize;
        if used > layers {
            return Err(format!(
                "point {row} has neighbour lists for {used} layers of {layers}"
            ));
        }
        let mut row_lists = Vec::with_capacity(used);
        for j in 0..used {
            let count = r.u16()? as usize;
            if count > max_list_len(j, m) {
                return Err(format!(
                    "point {row} has {count} neighbours in layer {j}, at most {} allowed",
                    max_list_len(j, m)
                ));
            }
            if count > 0 && j > top {
                return Err(format!(
                    "point {row} has neighbours in layer {j}, above the top layer {top}"
                ));
            }
            let mut list = Vec::with_capacity(count);
            for e in r.take_n(count, 8)?.chunks_exact(8) {
                let nb = u32::from_le_bytes([e[0], e[1], e[2], e[3]]);
                let d = f32::from_le_bytes([e[4], e[5], e[6], e[7]]);
                if nb as usize >= n {
                    return Err(format!(
                        "point {row} has neighbour {nb}, beyond the {n} points"
                    ));
                }
                if !(d >= 0.0 && d.is_finite()) {
                    return Err(format!("point {row} has a neighbour at distance {d}"));
                }
                list.push(nb);
            }
            row_lists.push(list);
        }
        lists[row as usize] = row_lists;
    }
    r.finish()?;
    // hnsw_rs moves the entry point only to a point on a strictly higher
    // layer, and the points were inserted in row order: the entry point is
    // the lowest row of the top layer.
    let entry = levels.iter().position(|&l| l as usize == top).unwrap_or(0) as u32;
    let graph = Graph::from_row_lists(levels, entry, top, lists);
    graph.check(m)?;
    Ok(graph)
}

/// Bounds-checked little-endian reads from a byte slice.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    fn take(&mut self, k: usize) -> std::result::Result<&'a [u8], String> {
        let left = self.bytes.len() - self.pos;
        if k > left {
            return Err(format!(
                "truncated: {k} bytes needed at byte {}, {left} left",
                self.pos
            ));
        }
        let s = &self.bytes[self.pos..self.pos + k];
        self.pos += k;
        Ok(s)
    }

    /// `count` items of `width` bytes.
    fn take_n(&mut self, count: usize, width: usize) -> std::result::Result<&'a [u8], String> {
        match count.checked_mul(width) {
            Some(k) => self.take(k),
            None => Err(format!(
                "truncated: {count} items of {width} bytes needed at byte {}",
                self.pos
            )),
        }
    }

    fn u8(&mut self) -> std::result::Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> std::result::Result<u16, String> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> std::result::Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> std::result::Result<u64, String> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }

    /// Nothing may follow the last record.
    fn finish(&self) -> std::result::Result<(), String> {
        let left = self.bytes.len() - self.pos;
        if left != 0 {
            return Err(format!("{left} unexpected bytes after the last layer"));
        }
        Ok(())
    }
}

/// Writes `graph` as a version-2 section (test helper: the layout hnsw_rs-era
/// nof1 wrote, with exact distances where hnsw_rs stored its own).
#[cfg(test)]
pub(crate) fn write_v2(
    graph: &Graph,
    points: &[f32],
    dim: usize,
    params: &HnswParams,
    out: &mut Vec<u8>,
) {
    let n = graph.len();
    out.extend_from_slice(GRAPH_MAGIC_V2);
    out.extend_from_slice(&(n as u32).to_le_bytes());
    out.extend_from_slice(&(dim as u32).to_le_bytes());
    out.push(layer_count(params) as u8);
    out.push(params.max_connections as u8);
    out.extend_from_slice(&graph.levels);
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.sort_by_key(|&row| graph.levels[row as usize]);
    for row in order {
        let lists: Vec<&[u32]> = graph
            .layers
            .iter()
            .enumerate()
            .map(|(j, layer)| {
                let rank = if j == 0 {
                    Some(row as usize)
                } else {
                    layer.rows.binary_search(&row).ok()
                };
                rank.map_or(&[][..], |r| {
                    &layer.neighbours[layer.offsets[r]..layer.offsets[r + 1]]
                })
            })
            .collect();
        let used = lists
            .iter()
            .rposition(|l| !l.is_empty())
            .map_or(0, |i| i + 1);
        out.push(used as u8);
        for list in &lists[..used] {
            out.extend_from_slice(&(list.len() as u16).to_le_bytes());
            for &nb in *list {
                let (a, b) = (row as usize * dim, nb as usize * dim);
                let d = points[a..a + dim]
                    .iter()
                    .zip(&points[b..b + dim])
                    .map(|(x, y)| (x - y) * (x - y))
                    .sum::<f32>()
                    .sqrt();
                out.extend_from_slice(&nb.to_le_bytes());
                out.extend_from_slice(&d.to_le_bytes());
            }
        }
    }
}
