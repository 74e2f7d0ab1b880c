//! VCF reader (`.vcf`, `.vcf.gz` in gzip or bgzip) into [`Genotypes`].
//!
//! The header is parsed by noodles-vcf (so a file it refuses is refused here
//! too, with its message); the records are parsed here, straight from the
//! line bytes and in parallel blocks, because only CHROM, POS, ID, REF, ALT
//! and one FORMAT field per sample are needed:
//!
//! - `GT` becomes ALT-allele copies 0/1/2; a call with any missing allele
//!   (`./.`, `./1`, `.`) is missing; a haploid call counts as homozygous
//!   (0 or 2, as PLINK stores it); ploidy above 2 is refused.
//! - `DS` is read instead when asked ([`GenotypeOptions::use_ds`]) and the
//!   record has it (otherwise `GT`); `.` is missing.
//! - A multi-allelic record is split: one variant per ALT allele, each
//!   counting copies of its own allele. Records whose ALT is `.` are skipped.
//!
//! Errors name the file, the line and the field or sample.

use std::io::BufRead;
use std::path::Path;

use rayon::prelude::*;

use super::genotypes::{Dosages, Genotypes, MISSING_CALL, check_samples};
use super::input::open_input;
use super::variants::Variant;
use crate::error::{Error, Position, Result};

/// How to read genotype files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GenotypeOptions {
    /// Read the `DS` (dosage) FORMAT field instead of `GT` where a record has it.
    pub use_ds: bool,
}

/// Bytes of whole lines read per block before the block is parsed.
pub const BLOCK_BYTES: usize = 8 << 20;

/// Reads a VCF file (plain, gzip or bgzip; `-` = standard input).
///
/// # Errors
/// [`crate::ErrorKind::Io`] when the file cannot be read,
/// [`crate::ErrorKind::Parse`] naming the line and field of a malformed
/// header or record (wrong number of samples, malformed GT, ...).
pub fn read_vcf(path: &Path, options: &GenotypeOptions) -> Result<Genotypes> {
    let size = std::fs::metadata(path).ok().map(|m| m.len());
    read_vcf_from(open_input(path)?, path, options, size)
}

/// [`read_vcf`] from a decompressed reader; `path` names it in messages,
/// `size_hint` (bytes of text, if known) sizes the matrix up front.
///
/// # Errors
/// As [`read_vcf`].
pub fn read_vcf_from(
    mut input: Box<dyn BufRead + Send>,
    path: &Path,
    options: &GenotypeOptions,
    size_hint: Option<u64>,
) -> Result<Genotypes> {
    let (samples, mut line_no) = read_header(&mut input, path)?;
    check_samples(path, &samples, "sample column")?;
    let n = samples.len();
    let parser = LineParser {
        path,
        samples: &samples,
        use_ds: options.use_ds,
    };
    let mut variants: Vec<Variant> = Vec::new();
    let mut calls: Vec<u8> = Vec::new();
    let mut values: Vec<f32> = Vec::new();
    let mut block = Block::default();
    let mut spare = Block::default();
    let mut eof = block.fill(&mut input, path, &mut line_no)?;
    let mut reserved = false;
    loop {
        let (parsed, next) = rayon::join(
            || parser.parse_block(&block),
            || {
                if eof {
                    Ok(true)
                } else {
                    spare.fill(&mut input, path, &mut line_no)
                }
            },
        );
        for rec in parsed {
            let rec = rec?;
            variants.extend(rec.variants);
            match rec.dosages {
                Dosages::Calls(c) => calls.extend_from_slice(&c),
                Dosages::Values(v) => {
                    if values.is_empty() && !calls.is_empty() {
                        values = calls.iter().map(|&c| call_value(c)).collect();
                        calls = Vec::new();
                    }
                    values.extend_from_slice(&v);
                }
            }
            if !values.is_empty() && !calls.is_empty() {
                values.extend(calls.drain(..).map(call_value));
            }
        }
        if !reserved && !variants.is_empty() {
            // The matrix is sized once from the bytes per variant of the first block.
            reserved = true;
            if let Some(size) = size_hint {
                let per = block.bytes() as f64 / variants.len() as f64;
                let rest = ((size as f64 / per) * 1.02) as usize;
                let more = rest.saturating_sub(variants.len());
                variants.reserve(more);
                if values.is_empty() {
                    calls.reserve(more.saturating_mul(n));
                }
            }
        }
        let done = next?;
        if eof {
            break;
        }
        eof = done;
        std::mem::swap(&mut block, &mut spare);
    }
    let dosages = if values.is_empty() {
        calls.shrink_to_fit();
        Dosages::Calls(calls)
    } else {
        Dosages::Values(values)
    };
    Genotypes::new(path, samples, variants, dosages)
}

fn call_value(c: u8) -> f32 {
    if c == MISSING_CALL {
        f32::NAN
    } else {
        c as f32
    }
}

/// Reads the meta lines and the `#CHROM` line; returns the sample names and
/// the number of lines read.
fn read_header(input: &mut Box<dyn BufRead + Send>, path: &Path) -> Result<(Vec<String>, u64)> {
    let mut text = String::new();
    let mut line = Vec::new();
    let mut n = 0u64;
    loop {
        line.clear();
        let got = input
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::io(path, e))?;
        if got == 0 {
            return Err(Error::parse(
                Position::line(path, n.max(1)),
                if n == 0 {
                    "empty file: not a VCF".to_string()
                } else {
                    "the header ends without a #CHROM line".to_string()
                },
            ));
        }
        n += 1;
        let s = std::str::from_utf8(&line)
            .map_err(|_| Error::parse(Position::line(path, n), "header line is not valid UTF-8"))?;
        if n == 1 && !s.starts_with("##fileformat=VCF") {
            return Err(Error::parse(
                Position::line(path, 1),
                format!(
                    "not a VCF: the first line must be ##fileformat=VCFv4.x, found {:?}",
                    cut(s.trim_end())
                ),
            ));
        }
        text.push_str(s.trim_end_matches(['\r', '\n']));
        text.push('\n');
        if s.starts_with("#CHROM") {
            break;
        }
        if !s.starts_with("##") {
            return Err(Error::parse(
                Position::line(path, n),
                format!(
                    "expected a ## meta line or the #CHROM header, found {:?}",
                    cut(s.trim_end())
                ),
            ));
        }
    }
    let header: noodles_vcf::Header = text
        .parse()
        .map_err(|e| Error::parse(Position::line(path, n), format!("invalid VCF header: {e}")))?;
    let samples: Vec<String> = header.sample_names().iter().cloned().collect();
    if samples.is_empty() {
        return Err(Error::parse(
            Position::line(path, n),
            "the #CHROM line names no samples (no FORMAT and sample columns)",
        ));
    }
    Ok((samples, n))
}

fn cut(s: &str) -> String {
    s.chars().take(60).collect()
}

/// Whole lines read from the input, with the line number of the first.
#[derive(Default)]
struct Block {
    bytes: Vec<u8>,
    /// (start, end) of each line in `bytes`, newline excluded.
    lines: Vec<(usize, usize)>,
    first_line: u64,
}

impl Block {
    fn bytes(&self) -> usize {
        self.bytes.len()
    }

    /// Reads lines until [`BLOCK_BYTES`] or the end; returns whether the input ended.
    fn fill(
        &mut self,
        input: &mut Box<dyn BufRead + Send>,
        path: &Path,
        line_no: &mut u64,
    ) -> Result<bool> {
        self.bytes.clear();
        self.lines.clear();
        self.first_line = *line_no + 1;
        while self.bytes.len() < BLOCK_BYTES {
            let start = self.bytes.len();
            let got = input.read_until(b'\n', &mut self.bytes).map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    Error::parse(
                        Position::line(path, *line_no + 1),
                        format!("truncated: the data ends early ({e}; a cut compressed file?)"),
                    )
                } else {
                    Error::io(path, e)
                }
            })?;
            if got == 0 {
                return Ok(true);
            }
            *line_no += 1;
            let mut end = self.bytes.len();
            while end > start && matches!(self.bytes[end - 1], b'\n' | b'\r') {
                end -= 1;
            }
            self.lines.push((start, end));
        }
        Ok(false)
    }
}

/// One record's variants and dosages (variant-major).
struct Parsed {
    variants: Vec<Variant>,
    dosages: Dosages,
}

struct LineParser<'a> {
    path: &'a Path,
    samples: &'a [String],
    use_ds: bool,
}

/// The fixed columns before the samples.
const FIXED: [&str; 9] = [
    "CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT",
];

impl LineParser<'_> {
    fn parse_block(&self, block: &Block) -> Vec<Result<Parsed>> {
        block
            .lines
            .par_iter()
            .enumerate()
            .with_min_len(8)
            .filter_map(|(i, &(s, e))| {
                let line = &block.bytes[s..e];
                if line.is_empty() {
                    return None;
                }
                self.parse_line(line, block.first_line + i as u64)
                    .transpose()
            })
            .collect()
    }

    fn err(&self, line: u64, column: &str, message: String) -> Error {
        Error::parse(Position::cell(self.path, line, column), message)
    }

    /// Parses one data line; `Ok(None)` for a record without ALT allele.
    fn parse_line(&self, line: &[u8], no: u64) -> Result<Option<Parsed>> {
        let mut fields: [&[u8]; 9] = [&[]; 9];
        let mut rest = line;
        for (k, f) in fields.iter_mut().enumerate() {
            match memchr::memchr(b'\t', rest) {
                Some(t) => {
                    *f = &rest[..t];
                    rest = &rest[t + 1..];
                }
                None if k == 8 => {
                    *f = rest;
                    rest = &[];
                }
                None => {
                    return Err(Error::parse(
                        Position::line(self.path, no),
                        format!(
                            "record has {} tab-separated fields; a VCF record needs CHROM to FORMAT and {} sample column(s)",
                            k + 1,
                            self.samples.len()
                        ),
                    ));
                }
            }
        }
        let text = |k: usize| -> Result<&str> {
            std::str::from_utf8(fields[k])
                .map_err(|_| self.err(no, FIXED[k], "not valid UTF-8".to_string()))
        };
        let chrom = text(0)?;
        if chrom.is_empty() {
            return Err(self.err(no, "CHROM", "empty chromosome".into()));
        }
        let pos: u64 = text(1)?.parse().ok().filter(|&p| p > 0).ok_or_else(|| {
            self.err(
                no,
                "POS",
                format!("not a position: {:?}", String::from_utf8_lossy(fields[1])),
            )
        })?;
        let id = match text(2)? {
            "." | "" => None,
            ids => ids.split(';').next().map(str::to_string),
        };
        let ref_allele = text(3)?.to_ascii_uppercase();
        if ref_allele.is_empty() || ref_allele == "." {
            return Err(self.err(no, "REF", "missing reference allele".into()));
        }
        let alt = text(4)?;
        if alt == "." || alt.is_empty() {
            return Ok(None);
        }
        let alts: Vec<&str> = alt.split(',').collect();
        let n_alt = alts.len();
        let format = fields[8];
        let mut gt_at = None;
        let mut ds_at = None;
        for (k, key) in format.split(|&b| b == b':').enumerate() {
            match key {
                b"GT" => gt_at = Some(k),
                b"DS" => ds_at = Some(k),
                _ => {}
            }
        }
        let use_ds = self.use_ds && ds_at.is_some();
        let at = match (use_ds, gt_at, ds_at) {
            (true, _, Some(k)) => k,
            (_, Some(k), _) => k,
            _ => {
                return Err(self.err(
                    no,
                    "FORMAT",
                    format!(
                        "no GT field{} in FORMAT {:?}",
                        if self.use_ds { " nor DS" } else { "" },
                        String::from_utf8_lossy(format)
                    ),
                ));
            }
        };
        let n = self.samples.len();
        let variants: Vec<Variant> = alts
            .iter()
            .map(|a| Variant {
                chrom: chrom.to_string(),
                pos,
                id: if n_alt == 1 { id.clone() } else { None },
                ref_allele: ref_allele.clone(),
                alt_allele: a.to_ascii_uppercase(),
            })
            .collect();
        let count_fields = || 1 + memchr::memchr_iter(b'\t', rest).count();
        let wrong_count = |found: usize| {
            Error::parse(
                Position::line(self.path, no),
                format!("record has {found} sample column(s), the #CHROM header names {n}"),
            )
        };
        if rest.is_empty() {
            return Err(wrong_count(0));
        }
        let dosages = if use_ds {
            let mut out = vec![f32::NAN; n_alt * n];
            let mut it = rest.split(|&b| b == b'\t');
            for s in 0..n {
                let field = it.next().ok_or_else(|| wrong_count(count_fields()))?;
                let sub = subfield(field, at);
                self.parse_ds(sub, n_alt, s, &mut out, no)?;
            }
            if it.next().is_some() {
                return Err(wrong_count(count_fields()));
            }
            Dosages::Values(out)
        } else {
            let mut out = vec![0u8; n_alt * n];
            if n_alt == 1 && at == 0 && self.fast_biallelic(rest, &mut out) {
                // Every sample was a plain diploid call.
            } else {
                out.fill(0);
                let mut it = rest.split(|&b| b == b'\t');
                for s in 0..n {
                    let field = it.next().ok_or_else(|| wrong_count(count_fields()))?;
                    let sub = subfield(field, at);
                    self.parse_gt(sub, n_alt, s, &mut out, no)?;
                }
                if it.next().is_some() {
                    return Err(wrong_count(count_fields()));
                }
            }
            Dosages::Calls(out)
        };
        Ok(Some(Parsed { variants, dosages }))
    }

    /// The common case, GT first in a biallelic record: every sample field
    /// starts `a|b` or `a/b` with `a`, `b` in {0, 1}. Returns false (and the
    /// general parser runs) at the first field that does not.
    fn fast_biallelic(&self, rest: &[u8], out: &mut [u8]) -> bool {
        let n = out.len();
        let mut p = 0usize;
        for (s, o) in out.iter_mut().enumerate() {
            let Some(f) = rest.get(p..p + 3) else {
                return false;
            };
            let (a, sep, b) = (f[0].wrapping_sub(b'0'), f[1], f[2].wrapping_sub(b'0'));
            if a > 1 || b > 1 || (sep != b'|' && sep != b'/') {
                return false;
            }
            *o = a + b;
            // Skip the rest of the field (other FORMAT values), then the tab.
            let after = p + 3;
            let next = match rest.get(after) {
                None => after,
                Some(b'\t') => after,
                Some(b':') => match memchr::memchr(b'\t', &rest[after..]) {
                    Some(t) => after + t,
                    None => rest.len(),
                },
                Some(_) => return false,
            };
            if s + 1 == n {
                return next == rest.len();
            }
            if next >= rest.len() {
                return false;
            }
            p = next + 1;
        }
        true
    }

    fn parse_gt(&self, gt: &[u8], n_alt: usize, s: usize, out: &mut [u8], no: u64) -> Result<()> {
        let n = self.samples.len();
        let bad = |why: &str| {
            self.err(
                no,
                &self.samples[s],
                format!("malformed GT {:?}: {why}", String::from_utf8_lossy(gt)),
            )
        };
        if gt.is_empty() {
            return Err(bad("empty"));
        }
        let mut ploidy = 0usize;
        let mut missing = false;
        let mut alleles: [usize; 2] = [0; 2];
        for allele in gt.split(|&b| b == b'/' || b == b'|') {
            ploidy += 1;
            if ploidy > 2 {
                return Err(bad("ploidy above 2 is not supported"));
            }
            if allele == b"." {
                missing = true;
                continue;
            }
            if allele.is_empty() || allele.len() > 6 || !allele.iter().all(u8::is_ascii_digit) {
                return Err(bad("an allele must be a number or '.'"));
            }
            let a: usize = allele
                .iter()
                .fold(0usize, |acc, d| acc * 10 + (d - b'0') as usize);
            if a > n_alt {
                return Err(bad(&format!(
                    "allele {a}, but the record has {n_alt} ALT allele(s)"
                )));
            }
            alleles[ploidy - 1] = a;
        }
        if missing {
            for k in 0..n_alt {
                out[k * n + s] = MISSING_CALL;
            }
            return Ok(());
        }
        let copies = if ploidy == 1 { 2 } else { 1 };
        for &a in &alleles[..ploidy] {
            if a > 0 {
                out[(a - 1) * n + s] += copies;
            }
        }
        Ok(())
    }

    fn parse_ds(&self, ds: &[u8], n_alt: usize, s: usize, out: &mut [f32], no: u64) -> Result<()> {
        let n = self.samples.len();
        if ds == b"." || ds.is_empty() {
            return Ok(());
        }
        let mut k = 0;
        for v in ds.split(|&b| b == b',') {
            let bad = || {
                self.err(
                    no,
                    &self.samples[s],
                    format!(
                        "malformed DS {:?}: expected {n_alt} dosage(s) in [0, 2]",
                        String::from_utf8_lossy(ds)
                    ),
                )
            };
            if k >= n_alt {
                return Err(bad());
            }
            if v != b"." {
                let x: f32 = fast_float2::parse(v).map_err(|_| bad())?;
                if !(0.0..=2.0).contains(&x) {
                    return Err(bad());
                }
                out[k * n + s] = x;
            }
            k += 1;
        }
        if k != n_alt {
            return Err(self.err(
                no,
                &self.samples[s],
                format!(
                    "malformed DS {:?}: expected {n_alt} dosage(s) in [0, 2]",
                    String::from_utf8_lossy(ds)
                ),
            ));
        }
        Ok(())
    }
}

/// The `k`-th colon-separated value of a sample field (empty if absent).
fn subfield(field: &[u8], k: usize) -> &[u8] {
    if k == 0 {
        return match memchr::memchr(b':', field) {
            Some(c) => &field[..c],
            None => field,
        };
    }
    field.split(|&b| b == b':').nth(k).unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "##fileformat=VCFv4.2\n##FORMAT=<ID=GT,Number=1,Type=String,Description=\"Genotype\">\n##FORMAT=<ID=DS,Number=A,Type=Float,Description=\"Dosage\">\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\ta\tb\tc\n";

    fn read(body: &str, use_ds: bool) -> Result<Genotypes> {
        let text = format!("{HEAD}{body}");
        let input: Box<dyn BufRead + Send> = Box::new(std::io::Cursor::new(text.into_bytes()));
        read_vcf_from(input, Path::new("t.vcf"), &GenotypeOptions { use_ds }, None)
    }

    #[test]
    fn a_cut_bgzip_file_is_truncated_at_a_line() {
        use std::io::Write;
        let mut text = String::from(HEAD);
        for i in 0..20_000 {
            text.push_str(&format!(
                "1\t{}\trs{i}\tA\tG\t.\t.\t.\tGT\t0|0\t0/1\t1|1\n",
                i + 1
            ));
        }
        let mut w = noodles_bgzf::io::Writer::new(Vec::new());
        w.write_all(text.as_bytes()).unwrap();
        let bytes = w.finish().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.vcf.gz");
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(
            read_vcf(&path, &GenotypeOptions::default())
                .unwrap()
                .n_variants(),
            20_000
        );
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let e = read_vcf(&path, &GenotypeOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("t.vcf.gz:") && e.contains(": truncated: the data ends early"),
            "{e}"
        );
    }

    #[test]
    fn calls_become_alt_copies() {
        let g = read(
            "1\t10\trs1\tA\tG\t.\t.\t.\tGT\t0|0\t0/1\t1|1\n\
             chr2\t20\t.\tc\tt\t.\t.\t.\tGT:DP\t./.:3\t1:4\t0\n\
             3\t30\trs3\tA\tC,T\t.\t.\t.\tGT\t1/2\t2|2\t0/0\n\
             4\t40\trs4\tA\t.\t.\t.\t.\tGT\t0/0\t0/0\t0/0\n",
            false,
        )
        .unwrap();
        assert_eq!(g.n_variants(), 4);
        let d = |v, s| g.dosage(v, s);
        assert_eq!((d(0, 0), d(0, 1), d(0, 2)), (0.0, 1.0, 2.0));
        assert!(d(1, 0).is_nan());
        assert_eq!((d(1, 1), d(1, 2)), (2.0, 0.0));
        assert_eq!(g.variants()[1].ref_allele, "C");
        assert_eq!((d(2, 0), d(2, 1), d(3, 0), d(3, 1)), (1.0, 0.0, 1.0, 2.0));
        assert_eq!(g.variants()[3].alt_allele, "T");
        assert_eq!(g.variants()[2].id, None);
    }

    #[test]
    fn ds_is_read_when_asked() {
        let body = "1\t10\trs1\tA\tG\t.\t.\t.\tGT:DS\t0|0:0.1\t0|1:.\t1|1:1.9\n";
        let g = read(body, true).unwrap();
        assert!((g.dosage(0, 0) - 0.1).abs() < 1e-6);
        assert!(g.dosage(0, 1).is_nan());
        let g = read(body, false).unwrap();
        assert_eq!(g.dosage(0, 2), 2.0);
    }

    #[test]
    fn errors_name_line_and_sample() {
        let e = read("1\t10\trs1\tA\tG\t.\t.\t.\tGT\t0|0\t0/x\t1|1\n", false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.vcf:5:b: malformed GT \"0/x\": an allele must be a number or '.'"
        );
        let e = read("1\t10\trs1\tA\tG\t.\t.\t.\tGT\t0|0\t0/1\n", false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.vcf:5: record has 2 sample column(s), the #CHROM header names 3"
        );
        let e = read("1\t10\trs1\tA\tG\t.\t.\t.\tGT\t0|0\t0/1\t1|1\t0|0\n", false).unwrap_err();
        assert!(e.to_string().contains("has 4 sample column(s)"), "{e}");
        let e = read("1\t10\trs1\tA\tG\t.\t.\t.\tGT\t0|0\t0/3\t1|1\n", false).unwrap_err();
        assert!(
            e.to_string().contains("allele 3, but the record has 1"),
            "{e}"
        );
        let e = read("1\tx\trs1\tA\tG\t.\t.\t.\tGT\t0|0\t0/1\t1|1\n", false).unwrap_err();
        assert!(
            e.to_string().starts_with("t.vcf:5:POS: not a position"),
            "{e}"
        );
    }

    proptest::proptest! {
        #[test]
        fn records_never_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..200)) {
            let mut text = HEAD.as_bytes().to_vec();
            text.extend_from_slice(&body);
            let input: Box<dyn BufRead + Send> = Box::new(std::io::Cursor::new(text));
            let _ = read_vcf_from(input, Path::new("t.vcf"), &GenotypeOptions::default(), None);
        }
    }
}
