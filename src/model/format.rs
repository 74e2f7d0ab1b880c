//! The model file: a checked, versioned container.
//!
//! Layout (all integers little-endian), documented in `docs/formats.md`:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `b"NOF1MODL"` |
//! | 8 | 4 | format version (`u32`) |
//! | 12 | 8 | payload length in bytes (`u64`) |
//! | 20 | 4 | CRC-32 (IEEE) of the payload (`u32`) |
//! | 24 | n | payload: [`ModelData`] encoded with bincode 1 (fixed-width integers) |
//!
//! Loading checks every field before decoding, then checks the decoded
//! model's internal consistency. Writing goes to a temporary file in the
//! target directory, which is synced and renamed over the target.

use std::io::Write;
use std::path::Path;

use bincode::Options;

use super::{Model, ModelData, NoProgress, Progress};
use crate::error::{Error, Result};

/// The 8 magic bytes every model file starts with.
pub const MAGIC: &[u8; 8] = b"NOF1MODL";
/// The format version this build writes (and the newest it reads).
pub const FORMAT_VERSION: u32 = 1;
/// Header length in bytes.
pub const HEADER_LEN: usize = 24;

fn codec(limit: u64) -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .with_limit(limit)
}

/// Encodes a model into the container bytes.
///
/// # Errors
/// [`crate::ErrorKind::Format`] if serialisation fails.
pub fn encode(data: &ModelData) -> Result<Vec<u8>> {
    let payload = codec(u64::MAX)
        .serialize(data)
        .map_err(|e| Error::format("<memory>", format!("cannot encode the model: {e}")))?;
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// Decodes and checks container bytes read from `path`.
///
/// # Errors
/// [`crate::ErrorKind::Format`] naming what is wrong: empty, not a nof1 model,
/// newer format version, truncated, trailing bytes, checksum mismatch, or an
/// inconsistent payload.
pub fn decode(bytes: &[u8], path: &Path) -> Result<ModelData> {
    if bytes.is_empty() {
        return Err(Error::format(path, "empty file: not a nof1 model"));
    }
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Err(Error::format(
            path,
            "not a nof1 model (the file does not start with the nof1 magic bytes)",
        ));
    }
    if bytes.len() < HEADER_LEN {
        return Err(Error::format(
            path,
            format!(
                "truncated model: {} bytes, the header alone is {HEADER_LEN}",
                bytes.len()
            ),
        ));
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
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
    let mut len8 = [0u8; 8];
    len8.copy_from_slice(&bytes[12..20]);
    let len = u64::from_le_bytes(len8);
    let have = (bytes.len() - HEADER_LEN) as u64;
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
    let crc = u32::from_le_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
    let payload = &bytes[HEADER_LEN..];
    let actual = crc32fast::hash(payload);
    if crc != actual {
        return Err(Error::format(
            path,
            format!("corrupt model: checksum mismatch (stored {crc:08x}, computed {actual:08x})"),
        ));
    }
    let data: ModelData = codec(len)
        .deserialize(payload)
        .map_err(|e| Error::format(path, format!("corrupt model payload: {e}")))?;
    validate(&data).map_err(|m| Error::format(path, format!("inconsistent model: {m}")))?;
    Ok(data)
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
    if d.calibration.pooled.knn.is_empty() || d.calibration.pooled.residual.is_empty() {
        return Err("no calibration scores".into());
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

/// Writes `bytes` to `path` atomically: a temporary file in the same directory
/// is written, synced and renamed over `path`. On error `path` is untouched.
/// An existing special file (`/dev/null`, a FIFO) is written in place instead,
/// never replaced.
///
/// # Errors
/// [`crate::ErrorKind::Io`] naming `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir()) {
        return std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|mut f| f.write_all(bytes))
            .map_err(|e| Error::io(path, e));
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

impl Model {
    /// Saves the model to `path` (atomically).
    ///
    /// # Errors
    /// [`crate::ErrorKind::Io`] when the file cannot be written.
    pub fn save(&self, path: &Path) -> Result<()> {
        let bytes =
            encode(&self.data).map_err(|_| Error::format(path, "cannot encode the model"))?;
        write_atomic(path, &bytes)
    }

    /// Loads a model from `path`.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Io`] when the file cannot be read,
    /// [`crate::ErrorKind::Format`] when it is not a valid model.
    pub fn load(path: &Path) -> Result<Model> {
        Self::load_with_progress(path, &NoProgress)
    }

    /// As [`Model::load`], reporting progress (an HNSW graph is rebuilt on load).
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
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let data = decode(&bytes, path)?;
        Ok(Model::from_data(data, progress))
    }

    /// Decodes a model from container bytes (`path` is only used in messages).
    ///
    /// # Errors
    /// As [`Model::load`].
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Model> {
        Ok(Model::from_data(decode(bytes, path)?, &NoProgress))
    }

    /// The container bytes of this model.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Format`] if serialisation fails.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        encode(&self.data)
    }
}
