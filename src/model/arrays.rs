//! Plain little-endian arrays in a model file (format version 7 on): the
//! per-member arrays of the reference section and the search tree, written
//! as a count (`u64`) followed by their values, so that loading copies them
//! in one pass instead of decoding them a value at a time (bincode does the
//! latter: 0.15 s of the 0.23 s a 1,000,000-member model took to load).
//!
//! Layout in `docs/formats.md` ("The reference section"). The reader bounds
//! every count by the bytes left before allocating; a corrupt array is an
//! error naming what is wrong, never a panic. The container's CRC covers
//! these bytes like the rest of the payload.

use super::MemberIds;

/// Appends `count` as a little-endian `u64`.
pub(crate) fn put_count(out: &mut Vec<u8>, count: usize) {
    out.extend_from_slice(&(count as u64).to_le_bytes());
}

/// Appends a `u32` array: its length, then its values.
pub(crate) fn put_u32s(out: &mut Vec<u8>, values: &[u32]) {
    put_count(out, values.len());
    out.reserve(4 * values.len());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// Appends an `f32` array: its length, then its values (their bits).
pub(crate) fn put_f32s(out: &mut Vec<u8>, values: &[f32]) {
    put_count(out, values.len());
    out.reserve(4 * values.len());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// Appends member ids: their number, each one's length in bytes (`u32`),
/// then their UTF-8 bytes one after the other.
///
/// # Errors
/// A message when an id is longer than `u32::MAX` bytes.
pub(crate) fn put_ids(out: &mut Vec<u8>, ids: &MemberIds) -> Result<(), String> {
    put_count(out, ids.len());
    out.reserve(4 * ids.len() + ids.text().len());
    for len in ids.lengths() {
        let len =
            u32::try_from(len).map_err(|_| format!("an id of {len} bytes is too long to store"))?;
        out.extend_from_slice(&len.to_le_bytes());
    }
    out.extend_from_slice(ids.text().as_bytes());
    Ok(())
}

/// Bytes an [`ArrayReader`] reads from: a slice, or a model file read as it
/// is decoded.
pub(crate) trait Source: std::io::Read {
    /// Bytes left to read (a count beyond them is refused before allocating).
    fn left(&self) -> usize;
}

impl Source for &[u8] {
    fn left(&self) -> usize {
        self.len()
    }
}

impl<S: Source + ?Sized> Source for &mut S {
    fn left(&self) -> usize {
        (**self).left()
    }
}

/// Values converted per read of an array (a 64 KB buffer).
const CHUNK_VALUES: usize = 16_384;

/// Reads the arrays [`put_u32s`], [`put_f32s`] and [`put_ids`] wrote, from
/// the front of a [`Source`].
pub(crate) struct ArrayReader<S> {
    src: S,
}

impl<S: Source> ArrayReader<S> {
    /// A reader of `src`.
    pub(crate) fn new(src: S) -> Self {
        ArrayReader { src }
    }

    /// The source, positioned after what was read.
    pub(crate) fn into_source(self) -> S {
        self.src
    }

    fn fill(&mut self, buf: &mut [u8], what: &str) -> Result<(), String> {
        let left = self.src.left();
        if buf.len() > left {
            return Err(format!(
                "truncated {what}: {} bytes needed, {left} left",
                buf.len()
            ));
        }
        self.src
            .read_exact(buf)
            .map_err(|e| format!("truncated {what}: {e}"))
    }

    /// One byte.
    pub(crate) fn u8(&mut self, what: &str) -> Result<u8, String> {
        let mut b = [0u8];
        self.fill(&mut b, what)?;
        Ok(b[0])
    }

    /// A count of items of `width` bytes each, bounded by the bytes left.
    fn count(&mut self, width: usize, what: &str) -> Result<usize, String> {
        let mut b = [0u8; 8];
        self.fill(&mut b, what)?;
        let count = u64::from_le_bytes(b);
        let left = self.src.left();
        match usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(width))
        {
            Some(bytes) if bytes <= left => Ok(count as usize),
            _ => Err(format!(
                "corrupt {what}: {count} items of {width} bytes, {left} bytes left"
            )),
        }
    }

    /// `n` four-byte values, converted a chunk at a time.
    fn words<T>(
        &mut self,
        n: usize,
        what: &str,
        convert: impl Fn([u8; 4]) -> T,
    ) -> Result<Vec<T>, String> {
        let mut out = Vec::with_capacity(n);
        let mut buf = vec![0u8; 4 * n.min(CHUNK_VALUES)];
        while out.len() < n {
            let m = (n - out.len()).min(CHUNK_VALUES);
            let bytes = &mut buf[..4 * m];
            self.fill(bytes, what)?;
            out.extend(
                bytes
                    .chunks_exact(4)
                    .map(|b| convert([b[0], b[1], b[2], b[3]])),
            );
        }
        Ok(out)
    }

    /// A `u32` array.
    pub(crate) fn u32s(&mut self, what: &str) -> Result<Vec<u32>, String> {
        let n = self.count(4, what)?;
        self.words(n, what, u32::from_le_bytes)
    }

    /// An `f32` array.
    pub(crate) fn f32s(&mut self, what: &str) -> Result<Vec<f32>, String> {
        let n = self.count(4, what)?;
        self.words(n, what, f32::from_le_bytes)
    }

    /// `len` bytes, refused before allocating when fewer are left.
    fn take(&mut self, len: usize, what: &str) -> Result<Vec<u8>, String> {
        let left = self.src.left();
        if len > left {
            return Err(format!("truncated {what}: {len} bytes needed, {left} left"));
        }
        let mut bytes = vec![0u8; len];
        self.fill(&mut bytes, what)?;
        Ok(bytes)
    }

    /// A byte array: its length (`u64`), then its bytes.
    pub(crate) fn bytes(&mut self, what: &str) -> Result<Vec<u8>, String> {
        let n = self.count(1, what)?;
        self.take(n, what)
    }

    /// Member ids.
    pub(crate) fn ids(&mut self, what: &str) -> Result<MemberIds, String> {
        let n = self.count(4, what)?;
        let mut ends = Vec::with_capacity(n);
        let mut end = 0usize;
        for len in self.words(n, what, u32::from_le_bytes)? {
            end = end
                .checked_add(len as usize)
                .ok_or_else(|| format!("corrupt {what}: lengths overflow"))?;
            ends.push(end);
        }
        let bytes = self.take(end, what)?;
        let text =
            String::from_utf8(bytes).map_err(|e| format!("corrupt {what}: not UTF-8 ({e})"))?;
        MemberIds::from_parts(text, ends).map_err(|m| format!("corrupt {what}: {m}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arrays_round_trip(
            a in proptest::collection::vec(any::<u32>(), 0..50),
            b in proptest::collection::vec(any::<f32>(), 0..50),
            s in proptest::collection::vec(".{0,6}", 0..20),
        ) {
            let s: MemberIds = s.iter().collect();
            let mut out = Vec::new();
            put_u32s(&mut out, &a);
            put_ids(&mut out, &s).unwrap();
            put_f32s(&mut out, &b);
            out.push(7);
            let mut r = ArrayReader::new(&out[..]);
            prop_assert_eq!(r.u32s("a").unwrap(), a);
            prop_assert_eq!(r.ids("s").unwrap(), s);
            let got: Vec<u32> = r.f32s("b").unwrap().iter().map(|v| v.to_bits()).collect();
            let want: Vec<u32> = b.iter().map(|v| v.to_bits()).collect();
            prop_assert_eq!(got, want);
            prop_assert_eq!(r.u8("tail").unwrap(), 7);
            prop_assert!(r.into_source().is_empty());
        }

        /// Any truncation or corruption is an error, never a panic.
        #[test]
        fn damaged_arrays_are_errors(
            s in proptest::collection::vec(".{0,6}", 1..10),
            cut in 0usize..200,
            flip in 0usize..200,
        ) {
            let s: MemberIds = s.iter().collect();
            let mut out = Vec::new();
            put_ids(&mut out, &s).unwrap();
            put_u32s(&mut out, &[1, 2, 3]);
            let mut damaged = out.clone();
            let i = flip % damaged.len();
            damaged[i] ^= 0xff;
            let _ = ArrayReader::new(&damaged[..]).ids("s");
            let cut = cut % out.len();
            let mut r = ArrayReader::new(&out[..cut]);
            let whole = r.ids("s").and_then(|_| r.u32s("u"));
            prop_assert!(whole.is_err());
        }
    }

    #[test]
    fn counts_beyond_the_bytes_left_are_refused_before_allocating() {
        let mut out = Vec::new();
        put_count(&mut out, usize::MAX / 2);
        let e = ArrayReader::new(&out[..]).f32s("embeddings").unwrap_err();
        assert!(e.starts_with("corrupt embeddings:"), "{e}");
        let mut bad = Vec::new();
        put_count(&mut bad, 1);
        bad.extend_from_slice(&2u32.to_le_bytes());
        bad.extend_from_slice(&[0xc3, 0xa9]);
        assert_eq!(
            ArrayReader::new(&bad[..]).ids("ids").unwrap().to_vec(),
            ["é"]
        );
        let mut split = Vec::new();
        put_count(&mut split, 2);
        split.extend_from_slice(&1u32.to_le_bytes());
        split.extend_from_slice(&1u32.to_le_bytes());
        split.extend_from_slice(&[0xc3, 0xa9]);
        let e = ArrayReader::new(&split[..]).ids("ids").unwrap_err();
        assert!(e.contains("splits the ids"), "{e}");
    }
}
