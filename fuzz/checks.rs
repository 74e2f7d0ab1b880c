//! The properties each fuzz target checks, in one place: the libFuzzer
//! targets (`fuzz/fuzz_targets/*.rs`) call these functions, and the test
//! suite replays every file of `fuzz/regressions/TARGET/` through the same
//! function (`cli/tests/never_lose.rs`, `fuzz_regressions_replay`), so a
//! crash kept there is a regression test of exactly what the fuzzer saw.
//!
//! Each function panics when its input breaks a property: the reader must
//! give `Ok` (with consistent shapes) or an error of kind parse, schema or
//! I/O that names the file it read and, where it names a line, a line that
//! exists; never a panic, never another kind of error.
//!
//! Only `std`, `nof1` and `crc32fast` are used, so the module builds both
//! in the fuzz workspace and in the test suite (included with `#[path]`).

use std::io::{BufRead, Read};
use std::path::Path;

use nof1::table::{Genotypes, Role, TableOptions};
use nof1::{ErrorKind, Table};

/// A target's check: panics when the input breaks a property.
pub type Check = fn(&[u8]);

/// Every target: its name (a directory of `fuzz/regressions/` and a binary
/// of `fuzz/Cargo.toml`) and its check.
pub const TARGETS: [(&str, Check); 7] = [
    ("table_reader", table_reader),
    ("model_bytes", model_bytes),
    ("model_payload", model_payload),
    ("vcf_reader", vcf_reader),
    ("bcf_reader", bcf_reader),
    ("plink_reader", plink_reader),
    ("whitespace_reader", whitespace_reader),
];

/// Line breaks in `bytes` (`\r` counted too, so `breaks + 1` bounds any line
/// number a reader can name).
fn breaks(bytes: &[u8]) -> u64 {
    bytes.iter().filter(|&&b| b == b'\n' || b == b'\r').count() as u64
}

/// An error from reading `text` as `path` names that file, is a parse,
/// schema or I/O error, and names no line past the end (`text` = `None`
/// when the bytes were compressed or binary, and lines are not checked).
fn check_error(err: &nof1::Error, path: &str, text: Option<&[u8]>) {
    let msg = err.to_string();
    assert!(msg.starts_with(path), "error does not name {path}: {msg}");
    match err.kind() {
        ErrorKind::Parse { position, .. } | ErrorKind::Schema { position, .. } => {
            assert_eq!(position.path, Path::new(path), "{msg}");
            if let (Some(line), Some(text)) = (position.line, text) {
                let max = breaks(text) + 1;
                assert!(
                    (1..=max).contains(&line),
                    "line {line} of a file of at most {max} lines: {msg}"
                );
            }
        }
        ErrorKind::Io { path: p, .. } => assert_eq!(p, Path::new(path), "{msg}"),
        other => panic!("unexpected error kind for {path}: {other:?}"),
    }
}

/// The table options and role a flags byte selects: bit 0 the role
/// (patients when set), bit 1 strict, bits 2–3 the delimiter (sniffed, tab,
/// `;`, `,`), bit 4 a group column `g`.
pub fn table_options(flags: u8) -> (TableOptions, Role) {
    let role = if flags & 1 == 0 {
        Role::Reference
    } else {
        Role::Patients
    };
    let options = TableOptions {
        strict: flags & 2 != 0,
        delimiter: match (flags >> 2) & 3 {
            0 => None,
            1 => Some(b'\t'),
            2 => Some(b';'),
            _ => Some(b','),
        },
        group_col: (flags & 16 != 0).then(|| "g".to_string()),
        ..TableOptions::default()
    };
    (options, role)
}

/// A table that was read has one id, line and note per row (and one group
/// per row when grouped) and `rows × features` values.
fn check_table(t: &Table) {
    let n = t.n_rows();
    assert_eq!(t.ids().len(), n);
    assert_eq!(t.values().len(), n * t.n_features());
    assert_eq!(t.feature_names().len(), t.n_features());
    if let Some(g) = t.groups() {
        assert_eq!(g.len(), n);
    }
}

/// `table_reader`: the first byte is the flags of [`table_options`], the
/// rest a CSV/TSV table read in chunks of 5 rows.
pub fn table_reader(data: &[u8]) {
    let Some((&flags, bytes)) = data.split_first() else {
        return;
    };
    let (options, role) = table_options(flags);
    let input: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(bytes.to_vec()));
    let path = Path::new("fuzz.csv");
    match nof1::table::TableReader::from_reader(input, path, &options, role) {
        Err(e) => check_error(&e, "fuzz.csv", Some(bytes)),
        Ok(mut reader) => loop {
            match reader.next_chunk(5) {
                Ok(Some(chunk)) => {
                    assert_eq!(chunk.values().len(), chunk.n_rows() * chunk.n_features());
                    assert_eq!(chunk.notes().len(), chunk.n_rows());
                }
                Ok(None) => break,
                Err(e) => {
                    check_error(&e, "fuzz.csv", Some(bytes));
                    break;
                }
            }
        },
    }
}

/// `model_bytes`: arbitrary bytes as a model file. The checksum stops nearly
/// every change; a file that loads has features.
pub fn model_bytes(data: &[u8]) {
    match nof1::Model::from_bytes(data, Path::new("fuzz.nof1")) {
        Err(e) => assert!(e.to_string().starts_with("fuzz.nof1"), "{e}"),
        Ok(model) => assert!(!model.features().is_empty()),
    }
}

/// A current-version model container around `payload`, with its length and
/// CRC-32 (the layout of `docs/formats.md`).
pub fn container(payload: &[u8]) -> Vec<u8> {
    use nof1::model::format::{FORMAT_VERSION, HEADER_LEN, MAGIC};
    let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    let mut h = crc32fast::Hasher::new();
    h.update(&out[..20]);
    h.update(payload);
    out.extend_from_slice(&h.finalize().to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// `model_payload`: arbitrary bytes as a model payload behind a valid header
/// and checksum, so the decoder and every structural check see them. A model
/// that loads assesses four patients over its own features without panicking.
pub fn model_payload(data: &[u8]) {
    let bytes = container(data);
    match nof1::Model::from_bytes(&bytes, Path::new("fuzz.nof1")) {
        Err(e) => assert!(e.to_string().starts_with("fuzz.nof1"), "{e}"),
        Ok(model) => {
            let p = model.features().len();
            if p == 0 || p > 10_000 {
                return;
            }
            let mut text = String::from("id");
            for f in model.features() {
                text.push(',');
                text.push_str(&f.replace([',', '"', '\n', '\r'], "_"));
            }
            text.push('\n');
            for (i, v) in ["0", "1", "-3.5", "1e6"].iter().enumerate() {
                text.push_str(&format!("p{i}{}\n", format!(",{v}").repeat(p)));
            }
            let options = TableOptions::default();
            if let Ok(table) =
                nof1::table::read_table_str(&text, Path::new("p.csv"), &options, Role::Patients)
            {
                let _ = model.assess(&table);
            }
        }
    }
}

/// Genotypes that were read have one dosage per variant and sample, calls in
/// {0, 1, 2, missing} and dosages in [0, 2] or NaN; as a table (unless two
/// variants share a site and alleles, an error naming the file) they give one
/// row per sample and one feature per variant.
fn check_genotypes(g: &Genotypes, path: &str) {
    use nof1::table::Dosages;
    use nof1::table::genotypes::MISSING_CALL;
    assert!(g.n_samples() > 0, "genotypes without samples");
    match g.dosages() {
        Dosages::Calls(c) => {
            assert_eq!(c.len(), g.n_samples() * g.n_variants());
            assert!(c.iter().all(|&x| x <= 2 || x == MISSING_CALL));
        }
        Dosages::Values(v) => {
            assert_eq!(v.len(), g.n_samples() * g.n_variants());
            assert!(
                v.iter().all(|x| x.is_nan() || (0.0..=2.0).contains(x)),
                "a dosage outside [0, 2]"
            );
        }
    }
    match g.to_table() {
        Ok(t) => {
            check_table(&t);
            assert_eq!(t.n_rows(), g.n_samples());
            assert_eq!(t.n_features(), g.n_variants());
        }
        Err(e) => check_error(&e, path, None),
    }
}

/// `vcf_reader`: bit 0 of the first byte asks for `DS` instead of `GT`; the
/// rest is a VCF file, plain, gzip or BGZF (decompressed as the CLI does).
pub fn vcf_reader(data: &[u8]) {
    let Some((&flags, bytes)) = data.split_first() else {
        return;
    };
    let options = nof1::table::vcf::GenotypeOptions {
        use_ds: flags & 1 != 0,
    };
    let path = Path::new("fuzz.vcf");
    let raw: Box<dyn BufRead + Send> = Box::new(std::io::Cursor::new(bytes.to_vec()));
    let plain = nof1::table::input::sniff(bytes) == nof1::table::input::Compression::None;
    let text = plain.then_some(bytes);
    let result = nof1::table::input::decompress(raw, path).and_then(|input| {
        nof1::table::vcf::read_vcf_from(input, path, &options, Some(bytes.len() as u64))
    });
    match result {
        Ok(g) => check_genotypes(&g, "fuzz.vcf"),
        Err(e) => check_error(&e, "fuzz.vcf", text),
    }
}

/// `bcf_reader`: bit 0 of the first byte asks for `DS` instead of `GT`; the
/// rest is a BCF file, plain or BGZF.
pub fn bcf_reader(data: &[u8]) {
    let Some((&flags, bytes)) = data.split_first() else {
        return;
    };
    let options = nof1::table::vcf::GenotypeOptions {
        use_ds: flags & 1 != 0,
    };
    let raw: Box<dyn BufRead + Send> = Box::new(std::io::Cursor::new(bytes.to_vec()));
    match nof1::table::bcf::read_bcf_from(raw, Path::new("fuzz.bcf"), &options) {
        Ok(g) => check_genotypes(&g, "fuzz.bcf"),
        // Record numbers are not lines: only the file is checked.
        Err(e) => check_error(&e, "fuzz.bcf", None),
    }
}

/// `plink_reader`: the `.fam`, the `.bim` and the `.bed` of a fileset, in
/// that order, separated by the first two NUL bytes.
pub fn plink_reader(data: &[u8]) {
    let mut parts = data.splitn(3, |&b| b == 0);
    let (Some(fam), Some(bim), Some(bed)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let paths = nof1::table::plink::PlinkPaths::new(Path::new("fuzz"));
    match nof1::table::plink::parse_plink(&paths, bed, bim, fam) {
        Ok(g) => check_genotypes(&g, "fuzz.bed"),
        Err(e) => {
            let msg = e.to_string();
            let (name, text) = if msg.starts_with("fuzz.fam") {
                ("fuzz.fam", Some(fam))
            } else if msg.starts_with("fuzz.bim") {
                ("fuzz.bim", Some(bim))
            } else {
                ("fuzz.bed", None)
            };
            check_error(&e, name, text);
        }
    }
}

/// `whitespace_reader`: the first byte is the flags of [`table_options`]
/// (the delimiter bits unused), the rest a whitespace-delimited table
/// (plink2 `.eigenvec` and the like). Bytes that are not UTF-8 are refused
/// before parsing, so only UTF-8 inputs are parsed.
pub fn whitespace_reader(data: &[u8]) {
    let Some((&flags, bytes)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let (options, role) = table_options(flags);
    let options = TableOptions {
        delimiter: None,
        ..options
    };
    match nof1::table::whitespace::parse_whitespace(text, Path::new("fuzz.txt"), &options, role) {
        Ok(t) => check_table(&t),
        Err(e) => check_error(&e, "fuzz.txt", Some(bytes)),
    }
}
