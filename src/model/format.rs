//! The model file: a checked, versioned container.
//!
//! Layout (all integers little-endian), documented in `docs/formats.md`:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `b"NOF1MODL"` |
//! | 8 | 4 | format version (`u32`) |
//! | 12 | 8 | payload length in bytes (`u64`) |
//! | 20 | 4 | CRC-32 (IEEE) of bytes 0..20 followed by the payload (`u32`) |
//! | 24 | n | payload |
//!
//! The payload is the *model section*, [`ModelData`] encoded with bincode 1
//! (fixed-width integers; from format version 7 without the reference's
//! per-member arrays), then (format version 7) the *reference section*: the
//! member ids, groups, embeddings and densities as plain little-endian
//! arrays (see `docs/formats.md`), then (format version 6 and later) the *channel
//! section*, each fold model's optional channel state ([`ChannelExtra`]: the
//! value channel's supports, the blocks) as a bincode list, then the
//! variant section, the search-tree section (plain arrays from version 7),
//! then for an HNSW model the *graph section*
//! (see [`crate::index::hnsw`]): the graph's levels, entry point and
//! per-layer adjacency arrays, so that loading reads the graph instead of
//! rebuilding it. An exact-index model has no graph section. Version 2 files
//! (hnsw_rs's neighbour records as the graph section) are read and their
//! graph converted to the arrays; version 1 files (CRC over the payload only,
//! never a graph section) are read and their graph rebuilt.
//!
//! Loading checks every field before decoding, then checks the decoded
//! model's internal consistency and every array of the graph section.
//! Writing goes to a temporary file in the target directory, which is synced
//! and renamed over the target.

use std::path::Path;

use bincode::Options;

use serde::{Deserialize, Serialize};

use super::arrays::{self, ArrayReader};
use super::{ComponentChoice, IndexCheck, Model, ModelData, NoProgress, Progress, ReferenceSet};
use crate::Params;
use crate::calibrate::{Calibration, Channel, ChannelExtra};
use crate::error::{Error, Result};
use crate::index::hnsw::{GraphLoadError, StoredGraph};
use crate::index::{ExactIndex, IndexKind, TreeLayout};
use crate::project::Projector;

/// The 8 magic bytes every model file starts with.
pub const MAGIC: &[u8; 8] = b"NOF1MODL";
/// The format version this build writes (and the newest it reads).
pub const FORMAT_VERSION: u32 = 7;
/// The oldest format version this build reads: earlier models were
/// calibrated without the guarantee of docs/method.md §7 and must be refitted.
pub const OLDEST_READABLE_VERSION: u32 = 5;
/// Header length in bytes.
pub const HEADER_LEN: usize = 24;

fn codec(limit: u64) -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .with_limit(limit)
}

/// The checksum stored in a version-2 or -3 header: CRC-32 of the header's first
/// 20 bytes (magic, version, payload length) followed by the payload.
fn checksum_v2(header: &[u8], payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&header[..20]);
    h.update(payload);
    h.finalize()
}

/// Encodes a model's contents into container bytes, without a graph section.
///
/// An HNSW model written this way has its graph rebuilt when it is loaded;
/// [`Model::to_bytes`] stores the graph.
///
/// # Errors
/// [`crate::ErrorKind::Format`] if serialisation fails.
pub fn encode(data: &ModelData) -> Result<Vec<u8>> {
    encode_parts(data, |out| {
        write_variant_section(out, data)?;
        write_tree_section(out, None)
    })
}

/// Appends the variant section (format version 4): each feature's variant
/// identity, or none.
fn write_variant_section(out: &mut Vec<u8>, data: &ModelData) -> std::result::Result<(), String> {
    codec(u64::MAX)
        .serialize_into(out, &data.variants)
        .map_err(|e| e.to_string())
}

/// Appends the search-tree section: the layout of the exact index's k-d
/// tree, or none (the tree is then built on load). Format version 7: a flag
/// byte, then the tree order, the nodes' words and the boxes as plain
/// arrays; versions 3–6 wrote the layout with bincode.
fn write_tree_section(
    out: &mut Vec<u8>,
    tree: Option<&TreeLayout>,
) -> std::result::Result<(), String> {
    match tree {
        None => out.push(0),
        Some(t) => {
            out.push(1);
            arrays::put_u32s(out, t.order());
            arrays::put_u32s(out, &t.node_words());
            arrays::put_f32s(out, t.boxes());
        }
    }
    Ok(())
}

/// Reads the search-tree section of format version 7 ([`write_tree_section`]).
fn read_tree_section<S: arrays::Source>(
    r: &mut ArrayReader<S>,
) -> std::result::Result<Option<TreeLayout>, String> {
    match r.u8("search tree flag")? {
        0 => Ok(None),
        1 => {
            let order = r.u32s("tree order")?;
            let words = r.u32s("tree nodes")?;
            let boxes = r.f32s("tree boxes")?;
            TreeLayout::from_parts(order, &words, boxes).map(Some)
        }
        b => Err(format!("search tree flag {b} (0 or 1 expected)")),
    }
}

/// The model section of format version 7 as written: [`ModelData`]'s
/// fields in their order, the reference reduced to its group names (its
/// per-member arrays follow in the reference section). Bincode writes a
/// borrowed field as the field itself, so [`ModelHead`] reads it back.
#[derive(Serialize)]
struct ModelHeadRef<'a> {
    crate_version: &'a String,
    created: &'a u64,
    params: &'a Params,
    features: &'a Vec<String>,
    dropped_features: &'a Vec<String>,
    projector: &'a Projector,
    components: &'a ComponentChoice,
    group_names: &'a Vec<String>,
    calibration: &'a Calibration,
    support_radius: &'a f64,
    group_support_radius: &'a Option<Vec<f64>>,
    index_kind: &'a IndexKind,
    index_check: &'a Option<IndexCheck>,
    warnings: &'a Vec<String>,
}

/// The model section of format version 7 as read (see [`ModelHeadRef`]).
#[derive(Deserialize)]
struct ModelHead {
    crate_version: String,
    created: u64,
    params: Params,
    features: Vec<String>,
    dropped_features: Vec<String>,
    projector: Projector,
    components: ComponentChoice,
    group_names: Vec<String>,
    calibration: Calibration,
    support_radius: f64,
    group_support_radius: Option<Vec<f64>>,
    index_kind: IndexKind,
    index_check: Option<IndexCheck>,
    warnings: Vec<String>,
}

impl<'a> ModelHeadRef<'a> {
    /// The head of `data` and its reference (every field named, so that a
    /// field added to [`ModelData`] cannot be forgotten here).
    fn of(data: &'a ModelData) -> (Self, &'a ReferenceSet) {
        let ModelData {
            crate_version,
            created,
            params,
            features,
            dropped_features,
            projector,
            components,
            reference,
            calibration,
            support_radius,
            group_support_radius,
            index_kind,
            index_check,
            warnings,
            variants: _,
            support: _,
        } = data;
        let head = ModelHeadRef {
            crate_version,
            created,
            params,
            features,
            dropped_features,
            projector,
            components,
            group_names: &reference.group_names,
            calibration,
            support_radius,
            group_support_radius,
            index_kind,
            index_check,
            warnings,
        };
        (head, reference)
    }
}

impl ModelHead {
    /// The model of this head and the reference section's arrays.
    fn into_data(self, mut reference: ReferenceSet) -> ModelData {
        reference.group_names = self.group_names;
        ModelData {
            crate_version: self.crate_version,
            created: self.created,
            params: self.params,
            features: self.features,
            dropped_features: self.dropped_features,
            projector: self.projector,
            components: self.components,
            reference,
            calibration: self.calibration,
            support_radius: self.support_radius,
            group_support_radius: self.group_support_radius,
            index_kind: self.index_kind,
            index_check: self.index_check,
            warnings: self.warnings,
            variants: None,
            support: None,
        }
    }
}

/// Appends the reference section (format version 7): ids, a flag byte and
/// the groups when there are groups, embeddings, density members, k-distances
/// and densities, each a plain array.
fn write_reference_section(
    out: &mut Vec<u8>,
    reference: &ReferenceSet,
) -> std::result::Result<(), String> {
    arrays::put_ids(out, &reference.ids)?;
    match &reference.groups {
        None => out.push(0),
        Some(g) => {
            out.push(1);
            arrays::put_u32s(out, g);
        }
    }
    arrays::put_f32s(out, &reference.embeddings);
    arrays::put_u32s(out, &reference.density_members);
    arrays::put_f32s(out, &reference.kdist);
    arrays::put_f32s(out, &reference.lrd);
    Ok(())
}

/// Reads the reference section ([`write_reference_section`]); the group
/// names come from the model section.
fn read_reference_section<S: arrays::Source>(
    r: &mut ArrayReader<S>,
) -> std::result::Result<ReferenceSet, String> {
    let ids = r.ids("member ids")?;
    let groups = match r.u8("groups flag")? {
        0 => None,
        1 => Some(r.u32s("member groups")?),
        b => return Err(format!("groups flag {b} (0 or 1 expected)")),
    };
    Ok(ReferenceSet {
        ids,
        group_names: Vec::new(),
        groups,
        embeddings: std::sync::Arc::new(r.f32s("embeddings")?),
        density_members: r.u32s("density members")?,
        kdist: r.f32s("k-distances")?,
        lrd: r.f32s("densities")?,
    })
}

/// The bytes [`write_reference_section`] writes for `reference`.
fn reference_section_len(reference: &ReferenceSet) -> usize {
    let ids = 8 + 4 * reference.ids.len() + reference.ids.text().len();
    let groups = 1 + reference.groups.as_ref().map_or(0, |g| 8 + 4 * g.len());
    let arrays = 4 * 8
        + 4 * (reference.embeddings.len()
            + reference.density_members.len()
            + reference.kdist.len()
            + reference.lrd.len());
    ids + groups + arrays
}

/// Appends the channel section (format version 6): each fold model's
/// [`ChannelExtra`] (value channel supports, blocks), in fold order, then
/// the model's observed support ([`ModelData::support`]).
fn write_channel_section(out: &mut Vec<u8>, data: &ModelData) -> std::result::Result<(), String> {
    let extras: Vec<&ChannelExtra> = data
        .calibration
        .folds
        .iter()
        .map(|f| &f.state.extra)
        .collect();
    codec(u64::MAX)
        .serialize_into(out, &(extras, &data.support))
        .map_err(|e| e.to_string())
}

/// Encodes the model section and the channel section, then lets `sections`
/// append the sections that follow them (search tree, graph).
fn encode_parts(
    data: &ModelData,
    sections: impl FnOnce(&mut Vec<u8>) -> std::result::Result<(), String>,
) -> Result<Vec<u8>> {
    crate::cpu::clear_upper_vector_state();
    let fail = |m: String| Error::format("<memory>", format!("cannot encode the model: {m}"));
    let (head, reference) = ModelHeadRef::of(data);
    let head_len = codec(u64::MAX)
        .serialized_size(&head)
        .map_err(|e| fail(e.to_string()))?;
    let mut out = Vec::with_capacity(
        (HEADER_LEN + 8)
            .saturating_add(head_len as usize)
            .saturating_add(reference_section_len(reference)),
    );
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&[0; 12]);
    // Version 7: the model section's length, then the section.
    out.extend_from_slice(&head_len.to_le_bytes());
    codec(u64::MAX)
        .serialize_into(&mut out, &head)
        .map_err(|e| fail(e.to_string()))?;
    write_reference_section(&mut out, reference).map_err(fail)?;
    write_channel_section(&mut out, data).map_err(fail)?;
    sections(&mut out).map_err(fail)?;
    let payload_len = (out.len() - HEADER_LEN) as u64;
    out[12..20].copy_from_slice(&payload_len.to_le_bytes());
    let crc = checksum_v2(&out[..HEADER_LEN], &out[HEADER_LEN..]);
    out[20..24].copy_from_slice(&crc.to_le_bytes());
    Ok(out)
}

/// A decoded, checked model file.
#[derive(Debug)]
pub struct Container {
    /// The file's format version.
    pub version: u32,
    /// The CRC-32 checksum stored in the header (verified).
    pub checksum: u32,
    /// The model's contents.
    pub data: ModelData,
    /// The stored layout of the exact index's k-d tree (format version 3),
    /// checked against the points when the model is assembled.
    tree: Option<TreeLayout>,
    /// The checked graph section, if the file has one.
    graph: Option<StoredGraph>,
}

impl Container {
    /// Length in bytes of the stored HNSW graph section; `None` when the file
    /// has none (an exact-index model, or an HNSW model whose graph is rebuilt
    /// on load).
    pub fn graph_len(&self) -> Option<usize> {
        self.graph.as_ref().map(|g| g.len())
    }

    /// Whether the file stores the exact index's k-d tree (format version 3;
    /// otherwise the tree, if the index uses one, is built on load).
    pub fn has_search_tree(&self) -> bool {
        self.tree.is_some()
    }
}

/// Decodes and checks container bytes read from `path`.
///
/// # Errors
/// As [`decode_container`].
pub fn decode(bytes: &[u8], path: &Path) -> Result<ModelData> {
    decode_container(bytes, path).map(|c| c.data)
}

/// Decodes and checks container bytes read from `path`, keeping the checked
/// graph section (read into its arrays) for loading.
///
/// # Errors
/// [`crate::ErrorKind::Format`] naming what is wrong: empty, not a nof1 model,
/// newer format version, truncated, trailing bytes, checksum mismatch, an
/// inconsistent payload, or a corrupt graph section.
pub fn decode_container(bytes: &[u8], path: &Path) -> Result<Container> {
    let mut src = bytes;
    decode_from(&mut src, bytes.len() as u64, path)
}

/// The payload of a container as it is read: at most the declared length,
/// with the checksum kept over every byte read.
struct Payload<'a, R> {
    src: &'a mut R,
    left: u64,
    crc: crc32fast::Hasher,
}

impl<R: std::io::Read> std::io::Read for Payload<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let got = self.src.read(&mut buf[..want])?;
        self.crc.update(&buf[..got]);
        self.left -= got as u64;
        Ok(got)
    }
}

/// Bytes read through a [`Payload`] a block at a time (so that the
/// checksum is updated a block at a time, not per value decoded).
type PayloadReader<'a, R> = std::io::BufReader<Payload<'a, R>>;

impl<R: std::io::Read> arrays::Source for PayloadReader<'_, R> {
    fn left(&self) -> usize {
        usize::try_from(self.get_ref().left)
            .unwrap_or(usize::MAX)
            .saturating_add(self.buffer().len())
    }
}

/// Decodes a container of `size` bytes read from `src` (`path` is only used
/// in messages). The header is checked first. A version-7 payload's model
/// and reference sections are decoded as they are read (no copy of the
/// whole file is held); the checksum is then checked over the whole payload
/// before anything decoded is used, and a mismatch is reported as such even
/// when decoding failed first.
fn decode_from<R: std::io::Read>(src: &mut R, size: u64, path: &Path) -> Result<Container> {
    crate::cpu::clear_upper_vector_state();
    let io = |e: std::io::Error| Error::io(path, e);
    if size == 0 {
        return Err(Error::format(path, "empty file: not a nof1 model"));
    }
    let mut header = [0u8; HEADER_LEN];
    let head_len = size.min(HEADER_LEN as u64) as usize;
    src.read_exact(&mut header[..head_len]).map_err(io)?;
    if head_len < MAGIC.len() || &header[..MAGIC.len()] != MAGIC {
        return Err(Error::format(
            path,
            "not a nof1 model (the file does not start with the nof1 magic bytes)",
        ));
    }
    if head_len < HEADER_LEN {
        return Err(Error::format(
            path,
            format!("truncated model: {size} bytes, the header alone is {HEADER_LEN}"),
        ));
    }
    let version = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if version > FORMAT_VERSION {
        return Err(Error::format(
            path,
            format!(
                "model format version {version} is newer than this nof1 reads (up to {FORMAT_VERSION}); upgrade nof1"
            ),
        ));
    }
    if version == 0 {
        return Err(Error::format(path, "invalid model format version 0"));
    }
    if version < OLDEST_READABLE_VERSION {
        return Err(Error::format(
            path,
            format!(
                "model format version {version} was written by an earlier nof1 whose calibration has no proven guarantee (it scored calibration members and patients with different models); this nof1 reads format version {OLDEST_READABLE_VERSION} and later: refit the model with `nof1 fit`"
            ),
        ));
    }
    let mut len8 = [0u8; 8];
    len8.copy_from_slice(&header[12..20]);
    let len = u64::from_le_bytes(len8);
    let have = size - HEADER_LEN as u64;
    if have < len {
        return Err(Error::format(
            path,
            format!("truncated model: payload has {have} of {len} bytes"),
        ));
    }
    if have > len {
        return Err(Error::format(
            path,
            format!(
                "corrupt model: {} unexpected bytes after the payload",
                have - len
            ),
        ));
    }
    let crc = u32::from_le_bytes([header[20], header[21], header[22], header[23]]);
    // The checksum covers the header's first 20 bytes and the payload (every
    // version read here; version 1 covered the payload only).
    let mut crc_so_far = crc32fast::Hasher::new();
    crc_so_far.update(&header[..20]);
    let mut payload: PayloadReader<'_, R> = std::io::BufReader::with_capacity(
        1 << 16,
        Payload {
            src,
            left: len,
            crc: crc_so_far,
        },
    );
    let corrupt = |e: bincode::Error| Error::format(path, format!("corrupt model payload: {e}"));
    // Version 7: the model section (its length first, so that it is decoded
    // from memory), then the reference section straight from the source.
    let streamed: Result<Option<ModelData>> = if version >= 7 {
        // The model section: its length (`u64`), then its bytes.
        ArrayReader::new(&mut payload)
            .bytes("model section")
            .map_err(|m| Error::format(path, format!("corrupt model payload: {m}")))
            .and_then(|bytes| {
                let mut slice = &bytes[..];
                let head: ModelHead = codec(bytes.len() as u64)
                    .deserialize_from(&mut slice)
                    .map_err(corrupt)?;
                if !slice.is_empty() {
                    return Err(Error::format(
                        path,
                        format!(
                            "corrupt model payload: {} bytes left in the model section",
                            slice.len()
                        ),
                    ));
                }
                let mut r = ArrayReader::new(&mut payload);
                let reference = read_reference_section(&mut r)
                    .map_err(|m| Error::format(path, format!("corrupt reference section: {m}")))?;
                Ok(Some(head.into_data(reference)))
            })
    } else {
        Ok(None)
    };
    // The rest of the payload (all of it before version 7), then the checksum.
    let mut bytes = Vec::with_capacity(arrays::Source::left(&payload));
    let read = std::io::Read::read_to_end(&mut payload, &mut bytes);
    let payload = payload.into_inner();
    if payload.left > 0 {
        // Only a source that ends early (a file cut while it was read).
        read.map_err(io)?;
        return Err(Error::format(
            path,
            format!(
                "truncated model: payload has {} of {len} bytes",
                len - payload.left
            ),
        ));
    }
    let actual = payload.crc.finalize();
    if crc != actual {
        return Err(Error::format(
            path,
            format!("corrupt model: checksum mismatch (stored {crc:08x}, computed {actual:08x})"),
        ));
    }
    let mut rest = &bytes[..];
    let mut data: ModelData = match streamed? {
        Some(data) => data,
        None => codec(len).deserialize_from(&mut rest).map_err(corrupt)?,
    };
    if version >= 6 {
        let (extras, support): (Vec<ChannelExtra>, Option<crate::marginal::Marginals>) =
            codec(rest.len() as u64)
                .deserialize_from(&mut rest)
                .map_err(|e| Error::format(path, format!("corrupt channel section: {e}")))?;
        if extras.len() != data.calibration.folds.len() {
            return Err(Error::format(
                path,
                format!(
                    "corrupt channel section: {} entries for {} fold models",
                    extras.len(),
                    data.calibration.folds.len()
                ),
            ));
        }
        for (f, e) in data.calibration.folds.iter_mut().zip(extras) {
            f.state.extra = e;
        }
        if support
            .as_ref()
            .is_some_and(|m| m.len() != data.features.len())
        {
            return Err(Error::format(
                path,
                "corrupt channel section: the observed support does not match the features",
            ));
        }
        data.support = support;
    }
    data.variants = codec(rest.len() as u64)
        .deserialize_from(&mut rest)
        .map_err(|e| Error::format(path, format!("corrupt variant section: {e}")))?;
    validate(&data).map_err(|m| Error::format(path, format!("inconsistent model: {m}")))?;
    let tree: Option<TreeLayout> = if version >= 7 {
        let mut r = ArrayReader::new(rest);
        let tree = read_tree_section(&mut r)
            .map_err(|m| Error::format(path, format!("corrupt search tree section: {m}")))?;
        rest = r.into_source();
        tree
    } else {
        codec(rest.len() as u64)
            .deserialize_from(&mut rest)
            .map_err(|e| Error::format(path, format!("corrupt search tree section: {e}")))?
    };
    let graph = if rest.is_empty() {
        None
    } else if data.index_kind == IndexKind::Exact {
        return Err(Error::format(
            path,
            format!(
                "corrupt model: {} unexpected bytes after an exact-index model",
                rest.len()
            ),
        ));
    } else {
        // `validate` checked 1 ≤ knn_components ≤ n_components.
        let dims = data.components.knn_components;
        let g = StoredGraph::parse(rest, version, data.reference.len(), dims, &data.params.hnsw)
            .map_err(|m| Error::format(path, format!("corrupt HNSW graph section: {m}")))?;
        Some(g)
    };
    Ok(Container {
        version,
        checksum: crc,
        data,
        tree,
        graph,
    })
}

/// Whether the optional channels' state matches the channels listed (`p`
/// features, `c` components).
fn channel_state_fits(state: &crate::calibrate::ChannelState, p: usize, c: usize) -> bool {
    let extra = &state.extra;
    state.channels().iter().all(|ch| match ch {
        Channel::Knn | Channel::Residual => true,
        Channel::Value => extra.value.as_ref().is_some_and(|m| m.len() == p),
        Channel::Block(b) => extra.blocks.as_ref().is_some_and(|bs| {
            (*b as usize) < bs.len()
                && bs.blocks.of_feature.len() == p
                && bs
                    .blocks
                    .of_feature
                    .iter()
                    .all(|&x| (x as usize) < bs.len())
                && bs.grams.len() == bs.len()
                && (1..=c).contains(&bs.n_components)
                && bs
                    .grams
                    .iter()
                    .all(|g| g.len() == bs.n_components * bs.n_components)
        }),
    })
}

/// Internal consistency of a decoded model.
fn validate(d: &ModelData) -> std::result::Result<(), String> {
    let p = d.features.len();
    let c = d.projector.n_components;
    let n = d.reference.ids.len();
    if c > p || d.components.knn_components == 0 || d.components.knn_components > c {
        return Err("component counts do not match the features".into());
    }
    if p == 0 || c == 0 || n == 0 {
        return Err("empty features, components or reference".into());
    }
    if let Some(v) = &d.variants
        && v.len() != p
    {
        return Err(format!("{} variant identities for {p} features", v.len()));
    }
    if d.projector.standardiser.n_features() != p
        || Some(d.projector.loadings.len()) != p.checked_mul(c)
    {
        return Err("projection does not match the features".into());
    }
    if Some(d.reference.embeddings.len()) != n.checked_mul(c)
        || d.reference.density_members.is_empty()
        || d.reference.density_members.len() > n
        || d.reference.density_members.iter().any(|&m| m as usize >= n)
        || d.reference.kdist.len() != d.reference.density_members.len()
        || d.reference.lrd.len() != d.reference.density_members.len()
    {
        return Err("reference arrays do not match the reference size".into());
    }
    if let Some(g) = &d.reference.groups
        && (g.len() != n
            || g.iter()
                .any(|&x| x as usize >= d.reference.group_names.len()))
    {
        return Err("group codes do not match the group names".into());
    }
    let cal = &d.calibration;
    if cal.pooled.n_members == 0
        || cal.folds.is_empty()
        || cal.pooled.novelty.len() != cal.folds.len()
    {
        return Err("no calibration scores".into());
    }
    let channels = cal.folds[0].state.channels().len();
    for f in &cal.folds {
        let dims = f.search_dims;
        let fc = f.projector.n_components;
        if f.projector.n_features() != p
            || Some(f.projector.loadings.len()) != p.checked_mul(fc)
            || dims == 0
            || dims > fc
            || !f.points.len().is_multiple_of(dims)
            || f.state.channels().len() != channels
            || f.scorer.transforms.len() != channels
            || f.scorer.weights.len() != channels
        {
            return Err("a fold model does not match the features".into());
        }
        if !channel_state_fits(&f.state, p, fc) {
            return Err("a fold model's channel state does not match its channels".into());
        }
        if cal.scheme == crate::calibrate::Scheme::CrossConformal && f.points.len() < dims {
            return Err("a fold model has no training member".into());
        }
        if f.points.iter().any(|v| !v.is_finite()) {
            return Err("non-finite fold embedding".into());
        }
    }
    if cal.scheme == crate::calibrate::Scheme::Split && cal.folds.len() != 1 {
        return Err("split conformal with more than one fold model".into());
    }
    if cal.members.iter().any(|m| {
        m.fold as usize >= cal.folds.len() || m.scores.len() != channels || !m.novelty.is_finite()
    }) {
        return Err("calibration members do not match the fold models".into());
    }
    if Some(cal.masked.raw.len()) != cal.masked.members.len().checked_mul(p)
        || cal
            .masked
            .members
            .iter()
            .any(|&m| m as usize >= cal.members.len())
    {
        return Err("masked calibration members do not match".into());
    }
    if let Some(bg) = &d.calibration.by_group
        && bg.len() != d.reference.group_names.len()
    {
        return Err("per-group calibration does not match the groups".into());
    }
    if d.params.check().is_err() {
        return Err("parameters out of range".into());
    }
    if d.reference.embeddings.iter().any(|v| !v.is_finite()) {
        return Err("non-finite embedding".into());
    }
    Ok(())
}

impl Model {
    /// Saves the model to `path` (atomically).
    ///
    /// # Errors
    /// [`crate::ErrorKind::Io`] when the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes = self
            .to_bytes()
            .map_err(|_| Error::format(path, "cannot encode the model"))?;
        crate::atomic::write_atomic(path, &bytes)
    }

    /// Loads a model from `path`.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Io`] when the file cannot be read,
    /// [`crate::ErrorKind::Format`] when it is not a valid model.
    pub fn load(path: &Path) -> Result<Model> {
        Self::load_with_progress(path, &NoProgress)
    }

    /// As [`Model::load`], reporting progress (loading a stored HNSW graph, or
    /// rebuilding one a version-1 file did not store).
    ///
    /// # Errors
    /// As [`Model::load`].
    pub fn load_with_progress(path: &Path, progress: &dyn Progress) -> Result<Model> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            return Err(Error::io(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "is a directory, not a model file",
                ),
            ));
        }
        let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let container = if meta.is_file() {
            // Decoded as it is read: the file's bytes are never all in memory.
            decode_from(&mut file, meta.len(), path)?
        } else {
            // A pipe (`--model <(…)`) has no size to check the header
            // against: read to its end first.
            let mut bytes = Vec::new();
            std::io::Read::read_to_end(&mut file, &mut bytes).map_err(|e| Error::io(path, e))?;
            decode_container(&bytes, path)?
        };
        Self::from_container(container, path, progress)
    }

    /// Decodes a model from container bytes (`path` is only used in messages).
    ///
    /// # Errors
    /// As [`Model::load_with_progress`].
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Model> {
        Self::from_container(decode_container(bytes, path)?, path, &NoProgress)
    }

    /// The model of a checked container: its stored graph is loaded, or the
    /// graph is built when the container has none.
    fn from_container(c: Container, path: &Path, progress: &dyn Progress) -> Result<Model> {
        let (points, dims) = super::search_points(&c.data);
        let exact = ExactIndex::with_layout(points, dims, c.tree)
            .map_err(|m| Error::format(path, format!("corrupt search tree section: {m}")))?;
        match c.graph {
            None => Model::with_exact(c.data, exact, progress),
            Some(g) => Model::from_stored_graph(c.data, exact, g, progress).map_err(|e| match e {
                GraphLoadError::Corrupt(m) => {
                    Error::format(path, format!("corrupt HNSW graph section: {m}"))
                }
            }),
        }
    }

    /// The container bytes of this model, with its HNSW graph if it has one.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Format`] if serialisation fails.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        encode_parts(&self.data, |out| {
            write_variant_section(out, &self.data)?;
            write_tree_section(out, self.exact.tree_layout().as_ref())?;
            match &self.hnsw {
                Some(g) if self.data.index_kind != IndexKind::Exact => g.write_section(out),
                Some(_) => Err("an exact-index model holds an HNSW graph".into()),
                None => Ok(()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::HnswParams;
    use crate::rng::SplitMix64;
    use crate::{IndexChoice, Params, Table};
    use std::sync::OnceLock;

    const PATH: &str = "m.nof1";

    /// A clustered reference of 1,500 members × 10 features.
    fn reference() -> Table {
        let (n, p) = (1500, 10);
        let pts = crate::rng::clustered_points(n, p, 6, 3);
        let mut rng = SplitMix64::new(5);
        let values = pts
            .iter()
            .map(|&v| v as f64 + 0.05 * rng.normal())
            .collect();
        Table::from_rows(
            (0..n).map(|i| format!("r{i}")).collect(),
            (0..p).map(|j| format!("f{j}")).collect(),
            values,
        )
        .expect("table")
    }

    fn fitted(index: IndexChoice) -> &'static (Model, Vec<u8>) {
        static HNSW: OnceLock<(Model, Vec<u8>)> = OnceLock::new();
        static EXACT: OnceLock<(Model, Vec<u8>)> = OnceLock::new();
        let cell = match index {
            IndexChoice::Hnsw => &HNSW,
            _ => &EXACT,
        };
        cell.get_or_init(|| {
            let model = Params::default()
                .k(5)
                .index(index)
                .hnsw(HnswParams {
                    max_connections: 12,
                    ef_construction: 48,
                    ef_search: 32,
                    max_layers: 16,
                })
                .fit(&reference())
                .expect("fit");
            let bytes = model.to_bytes().expect("encode");
            (model, bytes)
        })
    }

    /// A version-5 file (no channel section) of a model without the value
    /// channel loads and assesses exactly like the same model saved now.
    #[test]
    fn version_5_files_load_and_assess_as_before() {
        let t = reference();
        let small = t.select_rows(&(0..300).collect::<Vec<_>>());
        let model = Params::default()
            .k(5)
            .value_channel(false)
            .fit(&small)
            .expect("fit");
        assert!(
            model.data().calibration.folds[0]
                .state
                .channels()
                .iter()
                .all(|c| matches!(c, Channel::Knn | Channel::Residual))
        );
        // Version 5: header, model section, variant section, search-tree
        // section (no channel section).
        let mut v5 = Vec::new();
        v5.extend_from_slice(MAGIC);
        v5.extend_from_slice(&5u32.to_le_bytes());
        v5.extend_from_slice(&[0; 12]);
        codec(u64::MAX)
            .serialize_into(&mut v5, model.data())
            .expect("encode");
        write_variant_section(&mut v5, model.data()).expect("variants");
        codec(u64::MAX)
            .serialize_into(&mut v5, &model.exact.tree_layout())
            .expect("tree");
        let v5 = repack(&v5[..HEADER_LEN], &v5[HEADER_LEN..]);
        let c = decode_container(&v5, Path::new(PATH)).expect("decode v5");
        assert_eq!(c.version, 5);
        let old = Model::from_bytes(&v5, Path::new(PATH)).expect("load v5");
        let patients = t.select_rows(&(300..400).collect::<Vec<_>>());
        let a = model.assess(&patients).expect("assess");
        let b = old.assess(&patients).expect("assess");
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.verdict, y.verdict);
            assert_eq!(x.p_value.to_bits(), y.p_value.to_bits());
            assert_eq!(x.reason, y.reason);
        }
        // Saved again, it is a current-version file.
        let again =
            decode_container(&old.to_bytes().expect("encode"), Path::new(PATH)).expect("decode");
        assert_eq!(again.version, FORMAT_VERSION);
    }

    /// Replaces the payload of a version-2 container, fixing length and CRC.
    fn repack(bytes: &[u8], payload: &[u8]) -> Vec<u8> {
        let mut out = bytes[..HEADER_LEN].to_vec();
        out.extend_from_slice(payload);
        out[12..20].copy_from_slice(&(payload.len() as u64).to_le_bytes());
        let crc = checksum_v2(&out, &out[HEADER_LEN..]);
        out[20..24].copy_from_slice(&crc.to_le_bytes());
        out
    }

    #[cfg(feature = "hnsw")]
    fn graph_len(model: &Model) -> usize {
        let mut section = Vec::new();
        model
            .hnsw
            .as_ref()
            .expect("graph")
            .write_section(&mut section)
            .expect("section");
        section.len()
    }

    /// Queries in the search space: jittered members and far-out points.
    fn queries(model: &Model) -> Vec<Vec<f32>> {
        let dim = model.exact.dim();
        let mut rng = SplitMix64::new(11);
        (0..300)
            .map(|i| {
                let p = model.exact.point(rng.below(model.exact.len()));
                p.iter()
                    .map(|&x| match i % 2 {
                        0 => x + 0.2 * rng.normal() as f32,
                        _ => x * 25.0 + 60.0 * rng.normal() as f32,
                    })
                    .collect::<Vec<f32>>()
            })
            .inspect(|q| assert_eq!(q.len(), dim))
            .collect()
    }

    #[cfg(feature = "hnsw")]
    #[track_caller]
    fn assert_same_graph_searches(a: &Model, b: &Model) {
        let (ga, gb) = (a.hnsw.as_ref().expect("a"), b.hnsw.as_ref().expect("b"));
        let bits = |v: Vec<crate::index::Neighbour>| -> Vec<(u32, u32)> {
            v.into_iter()
                .map(|n| (n.index, n.distance.to_bits()))
                .collect()
        };
        for (i, q) in queries(a).iter().enumerate() {
            assert_eq!(bits(ga.search(q, 5)), bits(gb.search(q, 5)), "query {i}");
        }
    }

    #[test]
    #[cfg(feature = "hnsw")]
    fn hnsw_model_stores_its_graph_and_searches_identically() {
        let (model, bytes) = fitted(IndexChoice::Hnsw);
        let c = decode_container(bytes, Path::new(PATH)).expect("decode");
        assert_eq!(c.version, FORMAT_VERSION);
        assert_eq!(c.graph_len(), Some(graph_len(model)));
        let loaded = Model::from_bytes(bytes, Path::new(PATH)).expect("load");
        assert_same_graph_searches(model, &loaded);
        assert_eq!(&loaded.to_bytes().expect("encode"), bytes);
    }

    /// nof1's own graph under split conformal: the stored model (graph in
    /// rows, laid out again on load) assesses exactly as the fitted one, and
    /// patients drawn like the reference are called invisible at about the
    /// level α (the calibration was scored by the same graph search).
    #[test]
    fn own_graph_model_reloads_identically_and_keeps_its_level() {
        let (n, p, fresh) = (50_000, 5, 2_000);
        let pts = crate::rng::clustered_points(n + fresh, p, 8, 21);
        let table = |rows: std::ops::Range<usize>, tag: &str| {
            Table::from_rows(
                rows.clone().map(|i| format!("{tag}{i}")).collect(),
                (0..p).map(|j| format!("f{j}")).collect(),
                rows.flat_map(|i| pts[i * p..(i + 1) * p].iter().map(|&v| v as f64))
                    .collect(),
            )
            .expect("table")
        };
        let model = Params::default()
            .index(IndexChoice::Graph)
            .fit(&table(0..n, "r"))
            .expect("fit");
        assert_eq!(model.data().index_kind, crate::index::IndexKind::Graph);
        assert_eq!(
            model.data().calibration.scheme,
            crate::calibrate::Scheme::Split
        );
        let check = model.data().index_check.expect("recall measured");
        assert!(check.recall_in >= 0.9, "{check:?}");
        let bytes = model.to_bytes().expect("encode");
        let loaded = Model::from_bytes(&bytes, Path::new(PATH)).expect("load");
        assert_eq!(loaded.to_bytes().expect("encode"), bytes);
        let patients = table(n..n + fresh, "p");
        let a = model.assess(&patients).expect("assess");
        let b = loaded.assess(&patients).expect("assess");
        // Debug text: equal NaNs compare equal.
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
        let invisible = a
            .iter()
            .filter(|x| x.verdict == crate::Verdict::Invisible)
            .count() as f64
            / fresh as f64;
        // α = 0.05; 2,000 patients and 10,000 calibration scores: a binomial
        // spread of about 0.005 each.
        assert!(invisible <= 0.05 + 0.025, "false invisible {invisible}");
        // A patient with a missing feature is calibrated on members rescored
        // under its mask, by exact search: it is searched exactly too, so it
        // gets the exact-index model's assessment (same calibration data).
        let holed = Table::from_rows(
            (n..n + 300).map(|i| format!("h{i}")).collect(),
            (0..p).map(|j| format!("f{j}")).collect(),
            (n..n + 300)
                .flat_map(|i| (0..p).map(move |j| (i, j)))
                .map(|(i, j)| {
                    if j == i % p {
                        f64::NAN
                    } else {
                        f64::from(pts[i * p + j])
                    }
                })
                .collect(),
        )
        .expect("table");
        let exact = model
            .with_index_kind(crate::index::IndexKind::Exact, &crate::model::NoProgress)
            .expect("exact model");
        let g = model.assess(&holed).expect("assess");
        let e = exact.assess(&holed).expect("assess");
        assert!(
            g.iter()
                .all(|a| a.verdict != crate::Verdict::InsufficientData)
        );
        assert_eq!(format!("{g:?}"), format!("{e:?}"));
    }

    fn tree_len(model: &Model) -> usize {
        let mut section = Vec::new();
        write_tree_section(&mut section, model.exact.tree_layout().as_ref()).expect("section");
        section.len()
    }

    #[test]
    fn exact_models_store_their_search_tree_and_restore_it() {
        let (model, bytes) = fitted(IndexChoice::Exact);
        assert!(model.exact.tree_layout().is_some());
        // A bare encoding stores no tree (one byte) and no variants (one byte).
        assert_eq!(
            bytes.len(),
            encode(model.data()).expect("encode").len() + tree_len(model) - 1
        );
        let c = decode_container(bytes, Path::new(PATH)).expect("decode");
        assert_eq!(c.graph_len(), None);
        assert!(c.tree.is_some());
        let loaded = Model::from_bytes(bytes, Path::new(PATH)).expect("load");
        assert_eq!(loaded.exact, model.exact);
        // Without a stored tree (a bare encoding), the same tree is built.
        let bare = encode(model.data()).expect("encode");
        let built = Model::from_bytes(&bare, Path::new(PATH)).expect("load");
        assert_eq!(built.exact, model.exact);
        // The index searches the embeddings themselves (one copy in memory),
        // fitted and loaded alike.
        for m in [model, &loaded, &built] {
            assert_eq!(m.knn_components(), m.n_components());
            assert!(std::sync::Arc::ptr_eq(
                m.exact.shared_points(),
                &m.data().reference.embeddings
            ));
        }
    }

    /// A file read as it is decoded gives the model its bytes give; a
    /// source that ends before the size it was said to have is a
    /// truncation, and a changed byte is still a checksum mismatch.
    #[test]
    fn files_decode_as_they_are_read() {
        let (model, bytes) = fitted(IndexChoice::Exact);
        let dir = std::env::temp_dir().join(format!("nof1-format-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("m.nof1");
        std::fs::write(&path, bytes).expect("write");
        let loaded = Model::load(&path).expect("load");
        assert!(loaded.data() == model.data());
        assert_eq!(loaded.exact, model.exact);
        std::fs::remove_dir_all(&dir).ok();
        // The source ends 10 bytes early although the size said otherwise.
        let short = &bytes[..bytes.len() - 10];
        let err = decode_from(&mut &short[..], bytes.len() as u64, Path::new(PATH)).unwrap_err();
        assert!(
            err.to_string().contains("truncated model: payload has"),
            "{err}"
        );
        // A flipped byte in the reference section fails the checksum
        // before any decoded value is used.
        let (head, _) = ModelHeadRef::of(model.data());
        let at = HEADER_LEN + 8 + codec(u64::MAX).serialized_size(&head).expect("size") as usize;
        let mut flipped = bytes.clone();
        flipped[at] ^= 0x40;
        let err = Model::from_bytes(&flipped, Path::new(PATH)).unwrap_err();
        assert!(err.to_string().contains("checksum mismatch"), "{err}");
    }

    /// The reference section's counts and id lengths, edited behind a
    /// recomputed checksum, are typed format errors naming the section.
    #[test]
    fn corrupt_reference_sections_are_format_errors() {
        let (model, bytes) = fitted(IndexChoice::Exact);
        let (head, reference) = ModelHeadRef::of(model.data());
        // The model section's length, then the section.
        let head_len = 8 + codec(u64::MAX).serialized_size(&head).expect("size") as usize;
        let payload = &bytes[HEADER_LEN..];
        let n = reference.ids.len();
        // The id count; the first id's length; the last id's first byte
        // made a UTF-8 continuation byte; the groups flag.
        let first_len = head_len + 8;
        let text = first_len + 4 * n;
        let flag = text + reference.ids.text().len();
        let edits: [(usize, &[u8]); 4] = [
            (head_len, &u64::MAX.to_le_bytes()),
            (first_len, &u32::MAX.to_le_bytes()),
            (flag - reference.ids[n - 1].len(), &[0x80]),
            (flag, &[7]),
        ];
        for (at, new) in edits {
            let mut edited = payload.to_vec();
            edited[at..at + new.len()].copy_from_slice(new);
            let err = Model::from_bytes(&repack(bytes, &edited), Path::new(PATH)).unwrap_err();
            assert!(
                matches!(err.kind(), crate::ErrorKind::Format { .. }),
                "{err}"
            );
            assert!(
                err.to_string().contains("corrupt reference section"),
                "{err}"
            );
        }
    }

    /// A search-tree section edited behind a recomputed checksum is a typed
    /// format error naming the section, never a panic.
    #[test]
    fn corrupt_search_trees_are_format_errors() {
        let (model, bytes) = fitted(IndexChoice::Exact);
        let payload = &bytes[HEADER_LEN..];
        let at = payload.len() - tree_len(model);
        let mut rng = SplitMix64::new(8);
        let mut refused = 0;
        for _ in 0..200 {
            let mut edited = payload.to_vec();
            let i = at + rng.below(payload.len() - at);
            edited[i] ^= 1 << rng.below(8);
            match Model::from_bytes(&repack(bytes, &edited), Path::new(PATH)) {
                Err(err) => {
                    assert!(
                        matches!(err.kind(), crate::ErrorKind::Format { .. }),
                        "{err}"
                    );
                    assert!(
                        err.to_string().contains("search tree section")
                            || err.to_string().contains("unexpected bytes"),
                        "{err}"
                    );
                    refused += 1;
                }
                // Some flips keep a valid tree (a box widened, a cut moved
                // outward): still exact, as the layout check guarantees.
                Ok(loaded) => {
                    for q in queries(model) {
                        let want = model.exact.search(&q, 5, None, Some(1.0));
                        assert_eq!(loaded.exact.search(&q, 5, None, Some(1.0)), want);
                    }
                }
            }
        }
        assert!(refused > 100, "{refused} of 200 edits refused");
        let truncated = &payload[..payload.len() - 3];
        let err = Model::from_bytes(&repack(bytes, truncated), Path::new(PATH)).unwrap_err();
        assert!(err.to_string().contains("search tree section"), "{err}");
    }

    /// Files of format versions 1–4 (calibrated without a proven guarantee)
    /// are refused with a message naming the version.
    #[test]
    fn versions_before_5_are_refused_naming_the_version() {
        let (_, bytes) = fitted(IndexChoice::Exact);
        for v in 1u32..OLDEST_READABLE_VERSION {
            let mut old = bytes.clone();
            old[8..12].copy_from_slice(&v.to_le_bytes());
            let payload = old[HEADER_LEN..].to_vec();
            let err = Model::from_bytes(&repack(&old, &payload), Path::new(PATH)).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(&format!("model format version {v}")), "{msg}");
            assert!(msg.contains("refit"), "{msg}");
        }
    }

    #[test]
    #[cfg(feature = "hnsw")]
    fn hnsw_container_without_graph_section_rebuilds_it() {
        let (model, bytes) = fitted(IndexChoice::Hnsw);
        let bare = encode(model.data()).expect("encode");
        // A bare encoding stores no tree (one byte) and no graph.
        assert_eq!(
            bare.len() + tree_len(model) - 1 + graph_len(model),
            bytes.len()
        );
        let loaded = Model::from_bytes(&bare, Path::new(PATH)).expect("load");
        assert_same_graph_searches(model, &loaded);
    }

    #[test]
    #[cfg(feature = "hnsw")]
    fn graph_section_after_an_exact_model_is_an_error() {
        let (model, _) = fitted(IndexChoice::Hnsw);
        let mut data = model.data().clone();
        data.index_kind = IndexKind::Exact;
        let graph = model.hnsw.as_ref().expect("graph");
        let bytes = encode_parts(&data, |out| {
            write_variant_section(out, &data)?;
            write_tree_section(out, None)?;
            graph.write_section(out)
        })
        .expect("encode");
        let err = Model::from_bytes(&bytes, Path::new(PATH)).unwrap_err();
        assert!(
            err.to_string()
                .contains("unexpected bytes after an exact-index model"),
            "{err}"
        );
    }

    #[cfg(feature = "hnsw")]
    /// Patients near the reference and far from it, as a table of the
    /// model's features.
    fn patients() -> Table {
        let reference = reference();
        let p = reference.feature_names.len();
        let mut rng = SplitMix64::new(21);
        let mut values = Vec::new();
        for i in 0..400 {
            let row = rng.below(reference.n_rows());
            for j in 0..p {
                let v = reference.values[row * p + j];
                values.push(match i % 4 {
                    3 => v * 4.0 + 3.0 * rng.normal(),
                    _ => v + 0.3 * rng.normal(),
                });
            }
        }
        Table::from_rows(
            (0..400).map(|i| format!("p{i}")).collect(),
            reference.feature_names.clone(),
            values,
        )
        .expect("table")
    }

    #[cfg(feature = "hnsw")]
    /// The CSV and JSONL outputs of assessing `patients` with `model`.
    fn outputs(model: &Model, patients: &Table) -> Vec<Vec<u8>> {
        use crate::output::{AssessmentWriter, OutputFormat};
        let rows = model.assess(patients).expect("assess");
        let dir = tempfile::tempdir().expect("temp dir");
        [OutputFormat::Csv, OutputFormat::Jsonl]
            .into_iter()
            .map(|format| {
                let path = dir.path().join("out");
                let mut w = AssessmentWriter::create(&path, format, model).expect("create");
                w.write(model, &rows).expect("write");
                w.finish(model).expect("finish");
                std::fs::read(&path).expect("read")
            })
            .collect()
    }

    #[test]
    #[cfg(feature = "hnsw")]
    fn saved_and_loaded_hnsw_model_assesses_identically() {
        let (model, _) = fitted(IndexChoice::Hnsw);
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("m.nof1");
        model.save(&path).expect("save");
        let loaded = Model::load(&path).expect("load");
        let patients = patients();
        let want = outputs(model, &patients);
        assert!(want[0].len() > 1000);
        assert_eq!(outputs(&loaded, &patients), want);
        // The exact model's verdicts are the same.
        let (exact, _) = fitted(IndexChoice::Exact);
        let verdicts = |m: &Model| -> Vec<crate::Verdict> {
            m.assess(&patients)
                .expect("assess")
                .iter()
                .map(|a| a.verdict)
                .collect()
        };
        assert_eq!(verdicts(&loaded), verdicts(exact));
    }

    /// A graph section truncated or edited behind a recomputed checksum is a
    /// typed format error naming the section, never a panic.
    #[test]
    #[cfg(feature = "hnsw")]
    fn corrupt_graph_sections_are_format_errors() {
        use crate::index::hnsw::GRAPH_HEADER_LEN;
        let (model, bytes) = fitted(IndexChoice::Hnsw);
        let payload = &bytes[HEADER_LEN..];
        let section_at = payload.len() - graph_len(model);
        let path = Path::new(PATH);
        let check = |b: &[u8], what: &str, want: &str| {
            let err = Model::from_bytes(b, path).expect_err(what);
            assert!(
                matches!(err.kind(), crate::ErrorKind::Format { .. }),
                "{what}: {err}"
            );
            let text = err.to_string();
            assert!(
                text.starts_with("m.nof1: corrupt HNSW graph section: ") && text.contains(want),
                "{what}: {err}"
            );
        };
        let mut rng = SplitMix64::new(3);
        let section_len = payload.len() - section_at;
        let mut cuts: Vec<usize> = (1..64).chain([section_len - 1]).collect();
        cuts.extend((0..64).map(|_| rng.below(section_len - 1) + 1));
        for cut in cuts {
            let b = repack(bytes, &payload[..section_at + cut]);
            check(&b, &format!("truncated to {cut} bytes"), "truncated");
        }
        let mut longer = payload.to_vec();
        longer.push(0);
        check(
            &repack(bytes, &longer),
            "a trailing byte",
            "unexpected bytes",
        );
        let n = model.exact.len();
        let edit = |at: usize, value: &[u8]| {
            let mut edited = payload.to_vec();
            edited[section_at + at..section_at + at + value.len()].copy_from_slice(value);
            repack(bytes, &edited)
        };
        // Layer 0: edge count, first list length, first neighbour.
        let count_at = GRAPH_HEADER_LEN + n;
        check(
            &edit(count_at, &u64::MAX.to_le_bytes()),
            "an edge count",
            "add up",
        );
        check(
            &edit(count_at + 8, &u16::MAX.to_le_bytes()),
            "a list length",
            "neighbours, at most",
        );
        let first_nb = count_at + 8 + 2 * n;
        check(
            &edit(first_nb, &(n as u32).to_le_bytes()),
            "a neighbour out of range",
            "beyond",
        );
        check(
            &edit(GRAPH_HEADER_LEN - 4, &u32::MAX.to_le_bytes()),
            "an entry point out of range",
            "entry point",
        );
        // The graph of another parameter set.
        check(&edit(16, &[13]), "other max_connections", "max_connections");
    }
}
