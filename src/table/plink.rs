//! PLINK 1 binary fileset (`.bed` + `.bim` + `.fam`) into [`Genotypes`].
//!
//! Read directly (the format is small): the `.bed` starts with the magic
//! bytes `6c 1b 01` (variant-major), then one block of `ceil(n_samples / 4)`
//! bytes per variant, two bits per sample from the low bits up: `00` two
//! copies of A1, `01` missing, `10` one copy, `11` none. The `.bim` has six
//! whitespace-separated columns (chrom, id, cM, position, A1, A2), one line
//! per variant; the `.fam` six (FID, IID, father, mother, sex, phenotype), one
//! per sample. A1 is the counted allele (ALT, as plink2 writes it from a
//! VCF) and A2 the reference; the sample id is the IID.
//!
//! Errors name the file and line, or the `.bed` sizes that disagree.

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::genotypes::{Dosages, Genotypes, MISSING_CALL, check_samples};
use super::input::read_all;
use super::variants::Variant;
use crate::error::{Error, Position, Result};

/// The `.bed` magic: `l`, `0x1b`, then `01` for variant-major order.
pub const BED_MAGIC: [u8; 3] = [0x6c, 0x1b, 0x01];

/// The three files of a fileset named by any of them or by their common prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlinkPaths {
    /// `.bed` (genotypes).
    pub bed: PathBuf,
    /// `.bim` (variants).
    pub bim: PathBuf,
    /// `.fam` (samples).
    pub fam: PathBuf,
}

impl PlinkPaths {
    /// The fileset of `path`: `x.bed`, `x.bim`, `x.fam` or the prefix `x`.
    pub fn new(path: &Path) -> PlinkPaths {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let prefix = match ext.as_deref() {
            Some("bed") | Some("bim") | Some("fam") => path.with_extension(""),
            _ => path.to_path_buf(),
        };
        let with = |e: &str| {
            let mut s = prefix.clone().into_os_string();
            s.push(".");
            s.push(e);
            PathBuf::from(s)
        };
        PlinkPaths {
            bed: with("bed"),
            bim: with("bim"),
            fam: with("fam"),
        }
    }
}

/// Reads a PLINK 1 fileset named by its `.bed`, `.bim`, `.fam` or prefix.
///
/// # Errors
/// [`crate::ErrorKind::Io`] when a file cannot be read;
/// [`crate::ErrorKind::Parse`] for a malformed `.bim`/`.fam` line (naming
/// it), a `.bed` without the variant-major magic, or a `.bed` whose size is
/// not what the `.bim` and `.fam` line counts imply.
pub fn read_plink(path: &Path) -> Result<Genotypes> {
    let paths = PlinkPaths::new(path);
    let fam = read_all(&paths.fam)?;
    let bim = read_all(&paths.bim)?;
    let bed = std::fs::read(&paths.bed).map_err(|e| Error::io(&paths.bed, e))?;
    parse_plink(&paths, &bed, &bim, &fam)
}

/// [`read_plink`] on the bytes of the three files (the `.bim` and `.fam`
/// already decompressed); `paths` names them in messages.
///
/// # Errors
/// As [`read_plink`], except I/O.
pub fn parse_plink(paths: &PlinkPaths, bed: &[u8], bim: &[u8], fam: &[u8]) -> Result<Genotypes> {
    let samples = parse_fam(fam, &paths.fam)?;
    check_samples(&paths.fam, &samples, "line")?;
    let variants = parse_bim(bim, &paths.bim)?;
    let calls = decode_bed(bed, &paths.bed, samples.len(), variants.len())?;
    Genotypes::new(&paths.bed, samples, variants, Dosages::Calls(calls))
}

fn lines(text: &[u8]) -> impl Iterator<Item = (u64, Vec<&str>)> {
    text.split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, l)| {
            let l = std::str::from_utf8(l).unwrap_or("\u{fffd}");
            (i as u64 + 1, l.split_ascii_whitespace().collect::<Vec<_>>())
        })
        .filter(|(_, f)| !f.is_empty())
}

/// Sample ids (IIDs) of a `.fam`.
fn parse_fam(text: &[u8], path: &Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (no, f) in lines(text) {
        if f.len() != 6 {
            return Err(Error::parse(
                Position::line(path, no),
                format!(
                    "a .fam line has 6 columns (FID IID father mother sex phenotype), found {}",
                    f.len()
                ),
            ));
        }
        out.push(f[1].to_string());
    }
    if out.is_empty() {
        return Err(Error::parse(Position::file(path), "no samples"));
    }
    Ok(out)
}

/// Variants of a `.bim` (A1 = ALT, A2 = REF).
fn parse_bim(text: &[u8], path: &Path) -> Result<Vec<Variant>> {
    let mut out = Vec::new();
    for (no, f) in lines(text) {
        if f.len() != 6 {
            return Err(Error::parse(
                Position::line(path, no),
                format!(
                    "a .bim line has 6 columns (chrom id cM position A1 A2), found {}",
                    f.len()
                ),
            ));
        }
        let pos: u64 = f[3].parse().map_err(|_| {
            Error::parse(
                Position::cell(path, no, "position"),
                format!("not a position: {:?}", f[3]),
            )
        })?;
        out.push(Variant {
            chrom: f[0].to_string(),
            pos,
            id: match f[1] {
                "." | "" => None,
                id => Some(id.to_string()),
            },
            ref_allele: f[5].to_ascii_uppercase(),
            alt_allele: f[4].to_ascii_uppercase(),
        });
    }
    Ok(out)
}

/// Decodes a `.bed` into variant-major ALT (A1) copies.
fn decode_bed(bed: &[u8], path: &Path, n_samples: usize, n_variants: usize) -> Result<Vec<u8>> {
    if bed.len() < 3 || bed[..2] != BED_MAGIC[..2] {
        return Err(Error::parse(
            Position::file(path),
            format!(
                "not a PLINK 1 .bed: the file must start with the bytes 6c 1b 01, found {}",
                bed.iter()
                    .take(3)
                    .map(|b| format!("{b:02x}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        ));
    }
    if bed[2] != BED_MAGIC[2] {
        return Err(Error::parse(
            Position::file(path),
            "sample-major .bed (mode byte 00) is not supported; rewrite it with plink --make-bed",
        ));
    }
    let per = n_samples.div_ceil(4);
    let expected = 3 + per * n_variants;
    if bed.len() != expected {
        return Err(Error::parse(
            Position::file(path),
            format!(
                "the .bed holds {} bytes, but {n_variants} variants (.bim lines) × {n_samples} samples (.fam lines) need 3 + {n_variants} × {per} = {expected}; the fileset does not belong together or is truncated",
                bed.len()
            ),
        ));
    }
    const CODE: [u8; 4] = [2, MISSING_CALL, 1, 0];
    let mut out = vec![0u8; n_samples * n_variants];
    out.par_chunks_mut(n_samples.max(1))
        .zip(bed[3..].par_chunks(per.max(1)))
        .with_min_len(64)
        .for_each(|(row, block)| {
            for (s, o) in row.iter_mut().enumerate() {
                *o = CODE[((block[s / 4] >> ((s % 4) * 2)) & 3) as usize];
            }
        });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_set(dir: &Path, bed: &[u8], bim: &str, fam: &str) -> PathBuf {
        std::fs::write(dir.join("x.bed"), bed).unwrap();
        std::fs::write(dir.join("x.bim"), bim).unwrap();
        std::fs::write(dir.join("x.fam"), fam).unwrap();
        dir.join("x.bed")
    }

    const FAM: &str = "f a 0 0 1 -9\nf b 0 0 2 -9\nf c 0 0 1 -9\n";
    const BIM: &str = "1\trs1\t0\t10\tG\tA\n2\t.\t0\t20\tT\tC\n";

    #[test]
    fn decodes_two_bits_per_sample() {
        let dir = tempfile::tempdir().unwrap();
        // variant 1: a=00 (2), b=01 (missing), c=10 (1); variant 2: 11, 00, 11.
        let bed = [0x6c, 0x1b, 0x01, 0b10_01_00, 0b11_00_11];
        let g = read_plink(&write_set(dir.path(), &bed, BIM, FAM)).unwrap();
        assert_eq!(g.samples(), &["a", "b", "c"]);
        assert_eq!(g.dosage(0, 0), 2.0);
        assert!(g.dosage(0, 1).is_nan());
        assert_eq!(
            (g.dosage(0, 2), g.dosage(1, 0), g.dosage(1, 1)),
            (1.0, 0.0, 2.0)
        );
        assert_eq!(g.variants()[0].alt_allele, "G");
        assert_eq!(g.variants()[1].id, None);
        // Named by prefix or by another member of the set.
        assert_eq!(read_plink(&dir.path().join("x")).unwrap(), g);
        assert_eq!(read_plink(&dir.path().join("x.fam")).unwrap(), g);
    }

    #[test]
    fn bad_magic_and_sizes_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = write_set(dir.path(), &[0, 0, 0, 0, 0], BIM, FAM);
        let e = read_plink(&p).unwrap_err().to_string();
        assert!(e.contains("x.bed: not a PLINK 1 .bed"), "{e}");
        let p = write_set(dir.path(), &[0x6c, 0x1b, 0x01, 0], BIM, FAM);
        let e = read_plink(&p).unwrap_err().to_string();
        assert!(e.contains("holds 4 bytes, but 2 variants"), "{e}");
        let p = write_set(dir.path(), &[0x6c, 0x1b, 0x01, 0, 0], BIM, "f a 0 0\n");
        let e = read_plink(&p).unwrap_err().to_string();
        assert!(e.contains("x.fam:1: a .fam line has 6 columns"), "{e}");
    }
}
