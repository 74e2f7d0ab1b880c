//! BCF reader (BCF 2.x, bgzip-compressed or not) into [`Genotypes`].
//!
//! noodles-bcf reads the magic and the header (the VCF header text, whose
//! dictionary of strings names the FORMAT keys); the records are decoded
//! here from their bytes, with every length checked, because only CHROM,
//! POS, ID, the alleles and the `GT` (or `DS`) values are needed and a
//! truncated or corrupt record must be an error, never a panic. The rules
//! for calls are those of [`super::vcf`]. Errors name the file and the
//! 1-based record number.

use std::io::{BufRead, Read};
use std::path::Path;

use rayon::prelude::*;

use super::genotypes::{Dosages, Genotypes, MISSING_CALL, check_samples};
use super::input::{Compression, sniff};
use super::variants::Variant;
use super::vcf::GenotypeOptions;
use crate::error::{Error, Position, Result};

/// Reads a BCF file (`-` = standard input).
///
/// # Errors
/// [`crate::ErrorKind::Io`] when the file cannot be read;
/// [`crate::ErrorKind::Parse`] for a bad magic or header, or a truncated or
/// malformed record (naming its number).
pub fn read_bcf(path: &Path, options: &GenotypeOptions) -> Result<Genotypes> {
    let raw: Box<dyn BufRead + Send> = if path == Path::new("-") {
        Box::new(std::io::BufReader::with_capacity(1 << 20, std::io::stdin()))
    } else {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        Box::new(std::io::BufReader::with_capacity(1 << 20, file))
    };
    read_bcf_from(raw, path, options)
}

/// [`read_bcf`] from a raw (still compressed) reader; `path` names it in messages.
///
/// # Errors
/// As [`read_bcf`].
pub fn read_bcf_from(
    mut raw: Box<dyn BufRead + Send>,
    path: &Path,
    options: &GenotypeOptions,
) -> Result<Genotypes> {
    let head = raw.fill_buf().map_err(|e| Error::io(path, e))?;
    let mut input: Box<dyn BufRead + Send> = match sniff(head) {
        Compression::None => raw,
        Compression::Bgzf => Box::new(noodles_bgzf::io::MultithreadedReader::with_worker_count(
            std::num::NonZero::new(rayon::current_num_threads().clamp(1, 8))
                .unwrap_or(std::num::NonZero::<usize>::MIN),
            raw,
        )),
        Compression::Gzip => Box::new(std::io::BufReader::new(
            flate2::bufread::MultiGzDecoder::new(raw),
        )),
    };
    // The header is read here first, checked, and replayed to noodles.
    let head = read_raw_header(&mut input, path)?;
    let input: Box<dyn BufRead + Send> = Box::new(std::io::Cursor::new(head).chain(input));
    let mut reader = noodles_bcf::io::Reader::from(input);
    let header = reader.read_header().map_err(|e| {
        Error::parse(
            Position::file(path),
            format!("not a valid BCF header: {}", read_failure(&e)),
        )
    })?;
    let samples: Vec<String> = header.sample_names().iter().cloned().collect();
    if samples.is_empty() {
        return Err(Error::parse(
            Position::file(path),
            "the header names no samples",
        ));
    }
    check_samples(path, &samples, "sample")?;
    let strings = header.string_maps().strings();
    let contigs = header.string_maps().contigs();
    let key_gt = strings.get_index_of("GT");
    let key_ds = if options.use_ds {
        strings.get_index_of("DS")
    } else {
        None
    };
    let n = samples.len();
    let input = reader.get_mut();
    let mut variants: Vec<Variant> = Vec::new();
    let mut calls: Vec<u8> = Vec::new();
    let mut values: Vec<f32> = Vec::new();
    // Blocks of whole records are decoded in parallel while the next block
    // is read; results are taken in record order, so an error names the
    // first bad record, as a record-by-record reader would.
    let mut no = 0u64;
    let mut block = Block::default();
    let mut spare = Block::default();
    let mut eof = block.fill(input, path, &mut no)?;
    loop {
        let (decoded, next) = rayon::join(
            || {
                block
                    .records
                    .par_iter()
                    .with_min_len(16)
                    .map(|r| {
                        decode_record(
                            &block.bytes[r.start..r.start + r.l_shared],
                            &block.bytes[r.start + r.l_shared..r.end],
                            n,
                            key_gt,
                            key_ds,
                            |i| contigs.get_index(i).map(str::to_string),
                        )
                        .map_err(|m| rec_err(path, r.no, m))
                    })
                    .collect::<Vec<_>>()
            },
            || {
                if eof {
                    Ok(true)
                } else {
                    spare.fill(input, path, &mut no)
                }
            },
        );
        for rec in decoded {
            let Some((vars, dos)) = rec? else { continue };
            variants.extend(vars);
            append_dosages(&mut calls, &mut values, dos);
        }
        if eof {
            break;
        }
        eof = next?;
        std::mem::swap(&mut block, &mut spare);
    }
    let dosages = if values.is_empty() {
        Dosages::Calls(calls)
    } else {
        Dosages::Values(values)
    };
    Genotypes::new(path, samples, variants, dosages)
}

/// Bytes of whole records read per block before the block is decoded (small
/// in tests, so that they cross blocks).
const BLOCK_BYTES: usize = if cfg!(test) { 4096 } else { 8 << 20 };

/// Where one record lies in a [`Block`].
struct RawRecord {
    /// 1-based record number in the file.
    no: u64,
    start: usize,
    l_shared: usize,
    end: usize,
}

/// Whole records read from the (decompressed) input.
#[derive(Default)]
struct Block {
    bytes: Vec<u8>,
    records: Vec<RawRecord>,
}

impl Block {
    /// Reads whole records until [`BLOCK_BYTES`] or the end of the input;
    /// returns whether the input ended. `no` counts the records read.
    fn fill(&mut self, input: &mut (dyn Read + Send), path: &Path, no: &mut u64) -> Result<bool> {
        self.bytes.clear();
        self.records.clear();
        while self.bytes.len() < BLOCK_BYTES {
            let next = *no + 1;
            let mut lens = [0u8; 8];
            match read_full(input, &mut lens) {
                Ok(0) => return Ok(true),
                Ok(8) => {}
                Ok(got) => {
                    return Err(rec_err(
                        path,
                        next,
                        format!(
                            "truncated: the file ends {got} bytes into the record's length fields"
                        ),
                    ));
                }
                Err(e) => return Err(rec_err(path, next, read_failure(&e))),
            }
            *no = next;
            let l_shared = u32::from_le_bytes([lens[0], lens[1], lens[2], lens[3]]) as usize;
            let l_indiv = u32::from_le_bytes([lens[4], lens[5], lens[6], lens[7]]) as usize;
            let total = l_shared.saturating_add(l_indiv);
            if total > 1 << 31 {
                return Err(rec_err(
                    path,
                    next,
                    format!("implausible record length {total} bytes (corrupt file?)"),
                ));
            }
            let start = self.bytes.len();
            // No reservation by the stated length: a corrupt length must not
            // allocate before the bytes are there (the buffer grows as read).
            match (&mut *input)
                .take(total as u64)
                .read_to_end(&mut self.bytes)
            {
                Ok(got) if got == total => {}
                Ok(got) => {
                    return Err(rec_err(
                        path,
                        next,
                        format!(
                            "truncated: the record has {total} bytes, the file ends after {got}"
                        ),
                    ));
                }
                Err(e) => return Err(rec_err(path, next, read_failure(&e))),
            }
            self.records.push(RawRecord {
                no: next,
                start,
                l_shared,
                end: start + total,
            });
        }
        Ok(false)
    }
}

/// Appends a record's dosages, switching the whole matrix to `f32` values
/// once a record has `DS` values.
fn append_dosages(calls: &mut Vec<u8>, values: &mut Vec<f32>, dos: Dosages) {
    let as_value = |x: u8| {
        if x == MISSING_CALL {
            f32::NAN
        } else {
            x as f32
        }
    };
    match dos {
        Dosages::Calls(c) => {
            if values.is_empty() {
                calls.extend_from_slice(&c)
            } else {
                values.extend(c.iter().map(|&x| as_value(x)))
            }
        }
        Dosages::Values(v) => {
            if values.is_empty() && !calls.is_empty() {
                *values = calls.iter().map(|&x| as_value(x)).collect();
                *calls = Vec::new();
            }
            values.extend_from_slice(&v);
        }
    }
}

/// Why reading failed: an early end of the (decompressed) data is a
/// truncated file, anything else is passed on.
fn read_failure(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        format!("truncated: the data ends early ({e}; a cut compressed file?)")
    } else {
        format!("cannot be read: {e}")
    }
}

/// Bytes of the magic (`BCF`), the version (2 bytes) and the header length.
const HEADER_PREFIX: usize = 9;

/// Reads the magic, version, header length and header text, and refuses a
/// header whose dictionary indices (`IDX=`) exceed its own length in bytes:
/// noodles sizes its dictionaries by the largest index, so a corrupt
/// `IDX=102531392` in a 600-byte file would take 2.4 GB. A valid header has
/// at most one entry per line, so its indices stay far below that bound.
/// Returns the bytes read, to be replayed to the header parser (which checks
/// everything else: the magic, the version, the text).
fn read_raw_header(input: &mut dyn Read, path: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    let mut input = input;
    (&mut input)
        .take(HEADER_PREFIX as u64)
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    if bytes.len() < HEADER_PREFIX || &bytes[..3] != b"BCF" {
        return Ok(bytes);
    }
    let l_text = u32::from_le_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]);
    input
        .take(u64::from(l_text))
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    let text = &bytes[HEADER_PREFIX..];
    for (no, line) in text.split(|&b| b == b'\n').enumerate() {
        if let Some(idx) = largest_idx(line)
            && idx > text.len() as u64
        {
            return Err(Error::parse(
                Position::file(path),
                format!(
                    "not a valid BCF header: line {} has IDX={idx}, beyond the {} bytes of the header (corrupt file?)",
                    no + 1,
                    text.len()
                ),
            ));
        }
    }
    Ok(bytes)
}

/// The largest value of an `IDX=` field (after `<` or `,`) in a header line.
fn largest_idx(line: &[u8]) -> Option<u64> {
    let mut best = None;
    for (at, w) in line.windows(5).enumerate() {
        if (w[0] == b',' || w[0] == b'<') && &w[1..] == b"IDX=" {
            let v = line[at + 5..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .fold(0u64, |v, &d| {
                    v.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                });
            best = best.max(Some(v));
        }
    }
    best
}

fn rec_err(path: &Path, no: u64, message: String) -> Error {
    Error::parse(Position::file(path), format!("record {no}: {message}"))
}

/// Reads until `buf` is full or the input ends; returns the bytes read.
fn read_full(input: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// A bounds-checked cursor over a record's bytes.
struct Cursor<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        if n > self.bytes.len() {
            return Err(format!(
                "malformed {} section: {n} bytes needed, {} left",
                self.what,
                self.bytes.len()
            ));
        }
        let (a, b) = self.bytes.split_at(n);
        self.bytes = b;
        Ok(a)
    }

    fn u32(&mut self) -> std::result::Result<u32, String> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A typed-value descriptor: (type code, count).
    fn descriptor(&mut self) -> std::result::Result<(u8, usize), String> {
        let d = self.take(1)?[0];
        let (ty, count) = (d & 0x0f, (d >> 4) as usize);
        if count < 15 {
            return Ok((ty, count));
        }
        let (ity, icount) = self.descriptor()?;
        if icount != 1 {
            return Err(format!(
                "malformed {} section: bad vector length",
                self.what
            ));
        }
        let n = self.int(ity)?;
        usize::try_from(n)
            .map(|n| (ty, n))
            .map_err(|_| format!("malformed {} section: negative vector length", self.what))
    }

    fn int(&mut self, ty: u8) -> std::result::Result<i64, String> {
        Ok(match ty {
            1 => self.take(1)?[0] as i8 as i64,
            2 => {
                let b = self.take(2)?;
                i16::from_le_bytes([b[0], b[1]]) as i64
            }
            3 => {
                let b = self.take(4)?;
                i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as i64
            }
            t => {
                return Err(format!(
                    "malformed {} section: integer of type {t}",
                    self.what
                ));
            }
        })
    }

    fn string(&mut self) -> std::result::Result<String, String> {
        let (ty, n) = self.descriptor()?;
        if ty != 7 && !(ty == 0 && n == 0) {
            return Err(format!(
                "malformed {} section: expected a string, found type {ty}",
                self.what
            ));
        }
        let b = self.take(n)?;
        let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
        Ok(String::from_utf8_lossy(&b[..end]).into_owned())
    }
}

fn type_size(ty: u8) -> std::result::Result<usize, String> {
    match ty {
        0 => Ok(0),
        1 | 7 => Ok(1),
        2 => Ok(2),
        3 | 5 => Ok(4),
        t => Err(format!("unknown value type {t}")),
    }
}

type Decoded = Option<(Vec<Variant>, Dosages)>;

/// Decodes one record; `Ok(None)` for a record without ALT allele.
fn decode_record(
    shared: &[u8],
    indiv: &[u8],
    n: usize,
    key_gt: Option<usize>,
    key_ds: Option<usize>,
    contig: impl Fn(usize) -> Option<String>,
) -> std::result::Result<Decoded, String> {
    let mut c = Cursor {
        bytes: shared,
        what: "shared",
    };
    let chrom_id = c.u32()? as usize;
    let pos0 = c.u32()? as i32;
    let _rlen = c.u32()?;
    let _qual = c.u32()?;
    let n_allele_info = c.u32()?;
    let n_fmt_sample = c.u32()?;
    let n_allele = (n_allele_info >> 16) as usize;
    let n_sample = (n_fmt_sample & 0x00ff_ffff) as usize;
    let n_fmt = (n_fmt_sample >> 24) as usize;
    if n_sample != n {
        return Err(format!(
            "the record has {n_sample} samples, the header names {n}"
        ));
    }
    let chrom = contig(chrom_id)
        .ok_or_else(|| format!("chromosome index {chrom_id} is not a contig of the header"))?;
    if pos0 < 0 {
        return Err(format!("negative position {pos0}"));
    }
    let id = c.string()?;
    let id = match id.as_str() {
        "" | "." => None,
        s => s.split(';').next().map(str::to_string),
    };
    if n_allele == 0 {
        return Err("no reference allele".into());
    }
    let mut alleles = Vec::with_capacity(n_allele);
    for _ in 0..n_allele {
        alleles.push(c.string()?.to_ascii_uppercase());
    }
    let n_alt = n_allele - 1;
    if n_alt == 0 || (n_alt == 1 && alleles[1] == ".") {
        return Ok(None);
    }
    let mut c = Cursor {
        bytes: indiv,
        what: "sample",
    };
    let mut gt: Option<(u8, usize, &[u8])> = None;
    let mut ds: Option<(u8, usize, &[u8])> = None;
    for _ in 0..n_fmt {
        let (kty, kn) = c.descriptor()?;
        if kn != 1 {
            return Err("malformed sample section: FORMAT key is not one integer".into());
        }
        let key = c.int(kty)?;
        let (ty, count) = c.descriptor()?;
        let len = type_size(ty)?
            .checked_mul(count)
            .and_then(|x| x.checked_mul(n))
            .ok_or("malformed sample section: vector too long")?;
        let data = c.take(len)?;
        if Some(key as usize) == key_gt && key >= 0 {
            gt = Some((ty, count, data));
        } else if Some(key as usize) == key_ds && key >= 0 {
            ds = Some((ty, count, data));
        }
    }
    let variants: Vec<Variant> = alleles[1..]
        .iter()
        .map(|a| Variant {
            chrom: chrom.clone(),
            pos: pos0 as u64 + 1,
            id: if n_alt == 1 { id.clone() } else { None },
            ref_allele: alleles[0].clone(),
            alt_allele: a.clone(),
        })
        .collect();
    if let Some((ty, count, data)) = ds {
        if ty != 5 || count != n_alt {
            return Err(format!(
                "DS must hold {n_alt} float(s) per sample, found type {ty} × {count}"
            ));
        }
        let mut out = vec![f32::NAN; n_alt * n];
        for s in 0..n {
            for k in 0..n_alt {
                let o = (s * count + k) * 4;
                let bits = u32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]);
                if bits == 0x7F80_0001 || bits == 0x7F80_0002 {
                    continue;
                }
                let x = f32::from_bits(bits);
                if !(0.0..=2.0).contains(&x) {
                    return Err(format!("sample {}: DS {x} is not in [0, 2]", s + 1));
                }
                out[k * n + s] = x;
            }
        }
        return Ok(Some((variants, Dosages::Values(out))));
    }
    let Some((ty, ploidy, data)) = gt else {
        return Err("no GT field".into());
    };
    if ploidy > 2 {
        return Err(format!("ploidy {ploidy} is not supported (at most 2)"));
    }
    let size = type_size(ty)?;
    if !(1..=3).contains(&ty) {
        return Err(format!("GT must be integers, found type {ty}"));
    }
    let (eov, missing_vec): (i64, i64) = match ty {
        1 => (-127, -128),
        2 => (-32767, -32768),
        _ => (-2147483647, -2147483648),
    };
    let mut out = vec![0u8; n_alt * n];
    if ty == 1 && ploidy == 2 && n_alt == 1 {
        // The common case (biallelic, diploid, 8-bit values), without the
        // general loop's per-value dispatch.
        let table = biallelic_i8_table();
        let mut bad = false;
        for (o, pair) in out.iter_mut().zip(data.chunks_exact(2)) {
            let x = table[usize::from(u16::from_le_bytes([pair[0], pair[1]]))];
            bad |= x == BAD_CALL;
            *o = x;
        }
        if bad {
            // Name the first bad sample.
            for (s, pair) in data.chunks_exact(2).enumerate() {
                if let Err(a) = biallelic_i8(pair[0] as i8, pair[1] as i8) {
                    return Err(format!(
                        "sample {}: GT allele {a}, but the record has {n_alt} ALT allele(s)",
                        s + 1
                    ));
                }
            }
        }
        return Ok(Some((variants, Dosages::Calls(out))));
    }
    for s in 0..n {
        let mut alleles = [0usize; 2];
        let mut k = 0;
        let mut missing = false;
        for j in 0..ploidy {
            let o = (s * ploidy + j) * size;
            let v = match ty {
                1 => data[o] as i8 as i64,
                2 => i16::from_le_bytes([data[o], data[o + 1]]) as i64,
                _ => i32::from_le_bytes([data[o], data[o + 1], data[o + 2], data[o + 3]]) as i64,
            };
            if v == eov {
                break;
            }
            if v == missing_vec || (v >> 1) == 0 {
                missing = true;
                continue;
            }
            let a = ((v >> 1) - 1) as usize;
            if a > n_alt {
                return Err(format!(
                    "sample {}: GT allele {a}, but the record has {n_alt} ALT allele(s)",
                    s + 1
                ));
            }
            alleles[k] = a;
            k += 1;
        }
        if missing || k == 0 {
            for a in 0..n_alt {
                out[a * n + s] = MISSING_CALL;
            }
            continue;
        }
        let copies = if k == 1 { 2 } else { 1 };
        for &a in &alleles[..k] {
            if a > 0 {
                out[(a - 1) * n + s] += copies;
            }
        }
    }
    Ok(Some((variants, Dosages::Calls(out))))
}

/// Marks a value pair [`biallelic_i8`] refuses in [`biallelic_i8_table`].
const BAD_CALL: u8 = MISSING_CALL - 1;

/// [`biallelic_i8`] of every pair of bytes, indexed by the pair read as a
/// little-endian `u16` ([`BAD_CALL`] for an error).
fn biallelic_i8_table() -> &'static [u8; 1 << 16] {
    static TABLE: std::sync::OnceLock<Box<[u8; 1 << 16]>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = Box::new([0u8; 1 << 16]);
        for (i, x) in t.iter_mut().enumerate() {
            let [a, b] = (i as u16).to_le_bytes();
            *x = biallelic_i8(a as i8, b as i8).unwrap_or(BAD_CALL);
        }
        t
    })
}

/// ALT copies of one sample's diploid 8-bit GT in a biallelic record, with
/// the rules of the general decoder: each value is `(allele + 1) << 1 |
/// phased`, `-128` is missing and `-127` ends a haploid call. `Err(a)` for an
/// allele index `a` above 1.
#[inline]
fn biallelic_i8(first: i8, second: i8) -> std::result::Result<u8, usize> {
    let mut copies = 0u8;
    let mut k = 0u8;
    let mut missing = false;
    for v in [first, second] {
        if v == -127 {
            break;
        }
        if v == -128 || (v >> 1) == 0 {
            missing = true;
            continue;
        }
        let a = ((v as i64 >> 1) - 1) as usize;
        if a > 1 {
            return Err(a);
        }
        copies += a as u8;
        k += 1;
    }
    if missing || k == 0 {
        Ok(MISSING_CALL)
    } else if k == 1 {
        Ok(2 * copies)
    } else {
        Ok(copies)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A typed string (`descriptor`, bytes).
    fn typed_str(out: &mut Vec<u8>, text: &str) {
        let b = text.as_bytes();
        if b.len() < 15 {
            out.push(((b.len() as u8) << 4) | 7);
        } else {
            out.push(0xf7);
            out.push(0x11);
            out.push(b.len() as u8);
        }
        out.extend_from_slice(b);
    }

    /// One record's shared and sample sections: chromosome index 0, the
    /// alleles, and a GT field of key `key_gt` with `ploidy` values of type
    /// `ty` (1 = i8, 2 = i16) per sample.
    fn record(
        pos: u32,
        id: &str,
        alleles: &[&str],
        key_gt: u8,
        ty: u8,
        ploidy: usize,
        gt: &[i16],
    ) -> (Vec<u8>, Vec<u8>) {
        let n = gt.len() / ploidy;
        let mut shared = Vec::new();
        shared.extend_from_slice(&0u32.to_le_bytes());
        shared.extend_from_slice(&(pos - 1).to_le_bytes());
        shared.extend_from_slice(&1u32.to_le_bytes());
        shared.extend_from_slice(&0x7F80_0001u32.to_le_bytes());
        shared.extend_from_slice(&((alleles.len() as u32) << 16).to_le_bytes());
        shared.extend_from_slice(&((1u32 << 24) | n as u32).to_le_bytes());
        typed_str(&mut shared, id);
        for a in alleles {
            typed_str(&mut shared, a);
        }
        shared.push(0x00); // no FILTER
        let mut indiv = vec![0x11, key_gt, ((ploidy as u8) << 4) | ty];
        for &v in gt {
            match ty {
                1 => indiv.push(v as i8 as u8),
                _ => indiv.extend_from_slice(&v.to_le_bytes()),
            }
        }
        (shared, indiv)
    }

    /// The 16-bit value of an 8-bit GT value (missing and end-of-vector
    /// keep their meaning).
    fn widen(v: i8) -> i16 {
        match v {
            -128 => i16::MIN,
            -127 => i16::MIN + 1,
            v => v as i16,
        }
    }

    #[test]
    fn the_biallelic_fast_path_equals_the_general_decoder_on_every_value_pair() {
        let contig = |_: usize| Some("1".to_string());
        for a in i8::MIN..=i8::MAX {
            for b in i8::MIN..=i8::MAX {
                let (s8, i8_) = record(5, "rs1", &["A", "G"], 1, 1, 2, &[a as i16, b as i16]);
                let (s16, i16_) = record(5, "rs1", &["A", "G"], 1, 2, 2, &[widen(a), widen(b)]);
                let fast = decode_record(&s8, &i8_, 1, Some(1), None, contig);
                let general = decode_record(&s16, &i16_, 1, Some(1), None, contig);
                assert_eq!(fast, general, "GT values {a} {b}");
            }
        }
        // Spot checks: 0|1, 1/1, haploid 1, ./. and an allele the record lacks.
        let dec = |gt: [i8; 2]| biallelic_i8(gt[0], gt[1]);
        assert_eq!(dec([2, 5]), Ok(1));
        assert_eq!(dec([4, 4]), Ok(2));
        assert_eq!(dec([4, -127]), Ok(2));
        assert_eq!(dec([0, 0]), Ok(MISSING_CALL));
        assert_eq!(dec([2, 6]), Err(2));
    }

    /// An uncompressed BCF of `n_records` biallelic records over samples
    /// `a`, `b`, `c`, record `r` holding calls `r % 3`, `(r + 1) % 3`, missing.
    fn bcf_file(n_records: usize, bad: Option<usize>) -> Vec<u8> {
        let text = "##fileformat=VCFv4.3\n##contig=<ID=1>\n\
                    ##FORMAT=<ID=GT,Number=1,Type=String,Description=\"Genotype\">\n\
                    #CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ta\tb\tc\n";
        let mut out = b"BCF\x02\x02".to_vec();
        out.extend_from_slice(&(text.len() as u32 + 1).to_le_bytes());
        out.extend_from_slice(text.as_bytes());
        out.push(0);
        let header = noodles_bcf::io::Reader::from(std::io::Cursor::new(out.clone()))
            .read_header()
            .unwrap();
        let key = header.string_maps().strings().get_index_of("GT").unwrap() as u8;
        let gt = |x: usize| -> [i16; 2] { [[2, 2], [2, 4], [4, 4]][x] };
        for r in 0..n_records {
            let mut calls = Vec::new();
            calls.extend(gt(r % 3));
            calls.extend(gt((r + 1) % 3));
            calls.extend([0, 0]);
            if bad == Some(r) {
                calls[0] = 8; // allele 3 in a biallelic record
            }
            let (shared, indiv) = record(
                100 + r as u32,
                &format!("rs{r}"),
                &["C", "T"],
                key,
                1,
                2,
                &calls,
            );
            out.extend_from_slice(&(shared.len() as u32).to_le_bytes());
            out.extend_from_slice(&(indiv.len() as u32).to_le_bytes());
            out.extend_from_slice(&shared);
            out.extend_from_slice(&indiv);
        }
        out
    }

    fn read(bytes: Vec<u8>) -> Result<Genotypes> {
        read_bcf_from(
            Box::new(std::io::Cursor::new(bytes)),
            Path::new("t.bcf"),
            &GenotypeOptions::default(),
        )
    }

    #[test]
    fn records_across_blocks_are_read_in_order() {
        let n_records = 700; // about 10 blocks in tests
        let g = read(bcf_file(n_records, None)).unwrap();
        assert_eq!(g.samples(), ["a", "b", "c"]);
        assert_eq!(g.n_variants(), n_records);
        for r in 0..n_records {
            let v = &g.variants()[r];
            assert_eq!(
                (v.pos, v.id.as_deref()),
                (100 + r as u64, Some(&*format!("rs{r}")))
            );
            assert_eq!(g.dosage(r, 0), (r % 3) as f64);
            assert_eq!(g.dosage(r, 1), ((r + 1) % 3) as f64);
            assert!(g.dosage(r, 2).is_nan());
        }
    }

    #[test]
    fn errors_name_the_first_bad_record() {
        let e = read(bcf_file(700, Some(433))).unwrap_err().to_string();
        assert_eq!(
            e,
            "t.bcf: record 434: sample 1: GT allele 3, but the record has 1 ALT allele(s)"
        );
        let whole = bcf_file(700, None);
        let e = read(whole[..whole.len() - 3].to_vec())
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("t.bcf: record 700: truncated: the record has"),
            "{e}"
        );
        // Both a bad record and a truncation: the earlier one is reported.
        let bad = bcf_file(700, Some(10));
        let e = read(bad[..bad.len() - 3].to_vec()).unwrap_err().to_string();
        assert!(e.starts_with("t.bcf: record 11: "), "{e}");
        let e = read(whole[..whole.len() - 2000].to_vec())
            .unwrap_err()
            .to_string();
        assert!(e.contains("truncated"), "{e}");
    }

    /// plink2's BCF of a 1000 Genomes slice (6 samples, 12 variants), plain
    /// and BGZF (the fuzz seeds; the first byte is the target's flags).
    #[test]
    fn plink2_bcf_files_are_read() {
        for name in ["seed-1kg-slice-plain", "seed-1kg-slice-bgzf"] {
            let bytes = std::fs::read(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("fuzz/regressions/bcf_reader")
                    .join(name),
            )
            .unwrap();
            let raw: Box<dyn BufRead + Send> = Box::new(std::io::Cursor::new(bytes[1..].to_vec()));
            let g = read_bcf_from(raw, Path::new("x.bcf"), &GenotypeOptions::default()).unwrap();
            assert_eq!((g.n_samples(), g.n_variants()), (6, 12), "{name}");
            assert_eq!(g.samples()[0], "HG00096", "{name}");
            assert_eq!(g.variants()[0].id.as_deref(), Some("rs647325"), "{name}");
        }
    }

    /// Found by fuzzing (`bcf_reader`, kept as
    /// `fuzz/regressions/bcf_reader/oom-header-idx-102531392`): a header line
    /// with `IDX=102531392` in a 600-byte file made noodles allocate a
    /// dictionary of 102 million entries (2.4 GB).
    #[test]
    fn a_header_index_beyond_the_header_is_refused_before_parsing() {
        let bytes = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fuzz/regressions/bcf_reader/oom-header-idx-102531392"),
        )
        .unwrap();
        let raw: Box<dyn BufRead + Send> = Box::new(std::io::Cursor::new(bytes[1..].to_vec()));
        let e = read_bcf_from(raw, Path::new("x.bcf"), &GenotypeOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.bcf: not a valid BCF header: line "), "{e}");
        assert!(e.contains("IDX=102531392"), "{e}");
        assert_eq!(largest_idx(b"##contig=<ID=1,IDX=7>"), Some(7));
        assert_eq!(
            largest_idx(b"##INFO=<IDX=3,ID=A,Description=\"IDX=9\">"),
            Some(3)
        );
        assert_eq!(largest_idx(b"##fileformat=VCFv4.2"), None);
    }

    #[test]
    fn the_fuzzed_file_is_a_truncated_record_error() {
        let bytes = std::fs::read(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("fuzz/regressions/bcf_reader/timeout-record-claims-2gib"),
        )
        .unwrap();
        // The first byte is the fuzz target's flags.
        let raw: Box<dyn BufRead + Send> = Box::new(std::io::Cursor::new(bytes[1..].to_vec()));
        let e = read_bcf_from(raw, Path::new("x.bcf"), &GenotypeOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("x.bcf: record "), "{e}");
        assert!(e.contains("truncated"), "{e}");
    }
}
