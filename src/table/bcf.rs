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
    let input: Box<dyn BufRead + Send> = match sniff(head) {
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
    let mut reader = noodles_bcf::io::Reader::from(input);
    let header = reader
        .read_header()
        .map_err(|e| Error::parse(Position::file(path), format!("not a valid BCF header: {e}")))?;
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
    let mut buf = Vec::new();
    let mut no = 0u64;
    loop {
        no += 1;
        let mut lens = [0u8; 8];
        match read_full(input, &mut lens) {
            Ok(0) => break,
            Ok(8) => {}
            Ok(got) => {
                return Err(rec_err(
                    path,
                    no,
                    format!("truncated: the file ends {got} bytes into the record's length fields"),
                ));
            }
            Err(e) => return Err(rec_err(path, no, format!("cannot be read: {e}"))),
        }
        let l_shared = u32::from_le_bytes([lens[0], lens[1], lens[2], lens[3]]) as usize;
        let l_indiv = u32::from_le_bytes([lens[4], lens[5], lens[6], lens[7]]) as usize;
        let total = l_shared.saturating_add(l_indiv);
        if total > 1 << 31 {
            return Err(rec_err(
                path,
                no,
                format!("implausible record length {total} bytes (corrupt file?)"),
            ));
        }
        buf.resize(total, 0);
        match read_full(input, &mut buf) {
            Ok(got) if got == total => {}
            Ok(got) => {
                return Err(rec_err(
                    path,
                    no,
                    format!("truncated: the record has {total} bytes, the file ends after {got}"),
                ));
            }
            Err(e) => return Err(rec_err(path, no, format!("cannot be read: {e}"))),
        }
        let rec = decode_record(&buf[..l_shared], &buf[l_shared..], n, key_gt, key_ds, |i| {
            contigs.get_index(i).map(str::to_string)
        })
        .map_err(|m| rec_err(path, no, m))?;
        let Some((vars, dos)) = rec else { continue };
        variants.extend(vars);
        match dos {
            Dosages::Calls(c) => {
                if values.is_empty() {
                    calls.extend_from_slice(&c)
                } else {
                    values.extend(c.iter().map(|&x| {
                        if x == MISSING_CALL {
                            f32::NAN
                        } else {
                            x as f32
                        }
                    }))
                }
            }
            Dosages::Values(v) => {
                if values.is_empty() && !calls.is_empty() {
                    values = calls
                        .iter()
                        .map(|&x| {
                            if x == MISSING_CALL {
                                f32::NAN
                            } else {
                                x as f32
                            }
                        })
                        .collect();
                    calls = Vec::new();
                }
                values.extend_from_slice(&v);
            }
        }
    }
    let dosages = if values.is_empty() {
        Dosages::Calls(calls)
    } else {
        Dosages::Values(values)
    };
    Genotypes::new(path, samples, variants, dosages)
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
