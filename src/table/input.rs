//! Opening input files: the format by extension, gzip and bgzip by content.
//!
//! Every table format may be gzip-compressed: [`open_input`] looks at the
//! first bytes, not the name, and decompresses BGZF (bgzip, the block gzip
//! of VCF and BCF files) on several threads and plain gzip on one.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::error::{Error, Result};

/// The kinds of input file nof1 reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// Comma-separated table with a header.
    Csv,
    /// Tab-separated table with a header.
    Tsv,
    /// Whitespace-delimited table (plink2 `.eigenvec`, FRAPOSA `.pcs`,
    /// pgsc_calc `*_popsimilarity.txt.gz`), header optional, `#` before it allowed.
    Whitespace,
    /// VCF (`.vcf`, `.vcf.gz`).
    Vcf,
    /// BCF (`.bcf`).
    Bcf,
    /// PLINK 1 binary fileset (`.bed` with `.bim` and `.fam` beside it).
    Plink,
}

impl InputFormat {
    /// Every format with its name on the command line.
    pub const NAMES: [(&'static str, InputFormat); 6] = [
        ("csv", InputFormat::Csv),
        ("tsv", InputFormat::Tsv),
        ("whitespace", InputFormat::Whitespace),
        ("vcf", InputFormat::Vcf),
        ("bcf", InputFormat::Bcf),
        ("plink", InputFormat::Plink),
    ];

    /// The format implied by a file name, ignoring a `.gz`/`.bgz` suffix:
    /// `.vcf` → VCF, `.bcf` → BCF, `.bed`/`.bim`/`.fam` → PLINK,
    /// `.eigenvec`/`.pcs`/`.txt` → whitespace, `.tsv`/`.tab` → TSV, anything else → CSV.
    pub fn from_path(path: &Path) -> InputFormat {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let name = name
            .strip_suffix(".gz")
            .or_else(|| name.strip_suffix(".bgz"))
            .unwrap_or(&name);
        match name.rsplit_once('.').map(|(_, e)| e) {
            Some("vcf") => InputFormat::Vcf,
            Some("bcf") => InputFormat::Bcf,
            Some("bed") | Some("bim") | Some("fam") => InputFormat::Plink,
            Some("eigenvec") | Some("pcs") | Some("txt") => InputFormat::Whitespace,
            Some("tsv") | Some("tab") => InputFormat::Tsv,
            _ => InputFormat::Csv,
        }
    }

    /// Parses a format name (see [`InputFormat::NAMES`]).
    pub fn from_name(name: &str) -> Option<InputFormat> {
        let lower = name.to_ascii_lowercase();
        InputFormat::NAMES
            .iter()
            .find(|(n, _)| *n == lower)
            .map(|(_, f)| *f)
    }

    /// Whether the format holds genotypes (variants with identities).
    pub fn is_genotypes(self) -> bool {
        matches!(
            self,
            InputFormat::Vcf | InputFormat::Bcf | InputFormat::Plink
        )
    }
}

/// The compression of a file, told by its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Not compressed.
    None,
    /// gzip.
    Gzip,
    /// BGZF (bgzip): gzip blocks with their size in an extra field.
    Bgzf,
}

/// Tells the compression from the first bytes of a file.
pub fn sniff(head: &[u8]) -> Compression {
    if head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b {
        // BGZF: FEXTRA set and a "BC" subfield first (SAM/BAM specification 4.1).
        if head.len() >= 16 && head[3] & 0x04 != 0 && head[12] == b'B' && head[13] == b'C' {
            Compression::Bgzf
        } else {
            Compression::Gzip
        }
    } else {
        Compression::None
    }
}

/// Threads used to decompress BGZF input.
fn bgzf_workers() -> std::num::NonZero<usize> {
    std::num::NonZero::new(rayon::current_num_threads().clamp(1, 8))
        .unwrap_or(std::num::NonZero::<usize>::MIN)
}

/// Opens `path` (`-` = standard input) for buffered reading, decompressing
/// gzip or BGZF as the first bytes say.
///
/// # Errors
/// [`crate::ErrorKind::Io`] when the file cannot be opened or is a directory.
pub fn open_input(path: &Path) -> Result<Box<dyn BufRead + Send>> {
    let raw: Box<dyn BufRead + Send> = if path == Path::new("-") {
        Box::new(BufReader::with_capacity(1 << 20, std::io::stdin()))
    } else {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_dir() {
            return Err(Error::io(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "is a directory, not a file",
                ),
            ));
        }
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        Box::new(BufReader::with_capacity(1 << 20, file))
    };
    decompress(raw, path)
}

/// Wraps `raw` in a decompressor when its first bytes are gzip or BGZF.
///
/// # Errors
/// [`crate::ErrorKind::Io`] when the first bytes cannot be read.
pub fn decompress(
    mut raw: Box<dyn BufRead + Send>,
    path: &Path,
) -> Result<Box<dyn BufRead + Send>> {
    let head = raw.fill_buf().map_err(|e| Error::io(path, e))?;
    Ok(match sniff(head) {
        Compression::None => raw,
        Compression::Gzip => Box::new(BufReader::with_capacity(
            1 << 20,
            flate2::bufread::MultiGzDecoder::new(raw),
        )),
        Compression::Bgzf => Box::new(noodles_bgzf::io::MultithreadedReader::with_worker_count(
            bgzf_workers(),
            raw,
        )),
    })
}

/// Reads all of a (decompressed) input into memory.
///
/// # Errors
/// As [`open_input`], and any read or decompression error.
pub fn read_all(path: &Path) -> Result<Vec<u8>> {
    let mut input = open_input(path)?;
    let mut bytes = Vec::new();
    input
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(path, e))?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn formats_by_extension() {
        let f = |s: &str| InputFormat::from_path(Path::new(s));
        assert_eq!(f("a.vcf.gz"), InputFormat::Vcf);
        assert_eq!(f("a.VCF"), InputFormat::Vcf);
        assert_eq!(f("a.bcf"), InputFormat::Bcf);
        assert_eq!(f("dir/a.bed"), InputFormat::Plink);
        assert_eq!(f("x_popsimilarity.txt.gz"), InputFormat::Whitespace);
        assert_eq!(f("a.eigenvec"), InputFormat::Whitespace);
        assert_eq!(f("a.tsv.gz"), InputFormat::Tsv);
        assert_eq!(f("a.csv.gz"), InputFormat::Csv);
        assert_eq!(InputFormat::from_name("VCF"), Some(InputFormat::Vcf));
        assert_eq!(InputFormat::from_name("xls"), None);
    }

    #[test]
    fn gzip_and_bgzf_are_read_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let text = b"id,a\nx,1\n";
        let gz = dir.path().join("t.csv.gz");
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(text).unwrap();
        std::fs::write(&gz, e.finish().unwrap()).unwrap();
        assert_eq!(read_all(&gz).unwrap(), text);
        let bgz = dir.path().join("t.csv.bgz");
        let mut w = noodles_bgzf::io::Writer::new(Vec::new());
        w.write_all(text).unwrap();
        let bytes = w.finish().unwrap();
        assert_eq!(sniff(&bytes), Compression::Bgzf);
        std::fs::write(&bgz, bytes).unwrap();
        assert_eq!(read_all(&bgz).unwrap(), text);
    }
}
