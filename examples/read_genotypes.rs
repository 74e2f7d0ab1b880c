//! Times a genotype reader: `cargo run --release --example read_genotypes -- FILE`.
//!
//! Prints samples, variants, seconds, MB/s of (decompressed) input and the
//! bytes of the dosage matrix; measure peak memory with `/usr/bin/time -v`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Instant;

use nof1::table::InputFormat;
use nof1::table::vcf::GenotypeOptions;

fn main() -> Result<(), nof1::Error> {
    let path = PathBuf::from(std::env::args().nth(1).expect("usage: read_genotypes FILE"));
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let start = Instant::now();
    let options = GenotypeOptions::default();
    let g = match InputFormat::from_path(&path) {
        InputFormat::Vcf => nof1::table::vcf::read_vcf(&path, &options)?,
        InputFormat::Bcf => nof1::table::bcf::read_bcf(&path, &options)?,
        InputFormat::Plink => nof1::table::plink::read_plink(&path)?,
        other => panic!("{other:?} is not a genotype format"),
    };
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{}: {} samples x {} variants in {secs:.2} s; {:.0} MB/s of the file ({} bytes); dosage matrix {} bytes",
        path.display(),
        g.n_samples(),
        g.n_variants(),
        size as f64 / secs / 1e6,
        size,
        g.dosages().bytes()
    );
    Ok(())
}
