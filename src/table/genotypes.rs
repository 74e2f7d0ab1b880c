//! Genotypes as read from VCF, BCF or PLINK: samples, variants and a compact
//! dosage matrix.
//!
//! The readers ([`super::vcf`], [`super::bcf`], [`super::plink`]) fill a
//! [`Genotypes`], one byte per call (or one `f32` per dosage when the VCF's
//! `DS` field is read). [`Genotypes::to_table`] turns it into a [`Table`] for
//! fitting (one feature per variant), and [`Genotypes::to_model_table`] into a
//! table in a model's feature order after [`super::variants::match_variants`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::Table;
use super::variants::{Site, Variant};
use crate::error::{Error, Position, Result};

/// A missing call in [`Dosages::Calls`].
pub const MISSING_CALL: u8 = u8::MAX;

/// The dosage matrix, variant-major (`n_variants × n_samples`), as read.
#[derive(Debug, Clone, PartialEq)]
pub enum Dosages {
    /// ALT copies 0, 1 or 2 from called genotypes; [`MISSING_CALL`] = missing.
    Calls(Vec<u8>),
    /// Dosages in `[0, 2]` (e.g. the VCF `DS` field); `NaN` = missing.
    Values(Vec<f32>),
}

impl Dosages {
    fn len(&self) -> usize {
        match self {
            Dosages::Calls(v) => v.len(),
            Dosages::Values(v) => v.len(),
        }
    }

    /// Bytes held by the matrix.
    pub fn bytes(&self) -> usize {
        match self {
            Dosages::Calls(v) => v.len(),
            Dosages::Values(v) => v.len() * 4,
        }
    }
}

/// Samples × variants of genotype dosages (ALT-allele copies).
#[derive(Debug, Clone, PartialEq)]
pub struct Genotypes {
    source: PathBuf,
    samples: Vec<String>,
    variants: Vec<Variant>,
    dosages: Dosages,
}

impl Genotypes {
    /// Builds genotypes from their parts; `dosages` is variant-major.
    ///
    /// # Errors
    /// [`crate::ErrorKind::DimensionMismatch`] when `dosages` does not hold
    /// `variants.len() × samples.len()` values.
    pub fn new(
        source: impl Into<PathBuf>,
        samples: Vec<String>,
        variants: Vec<Variant>,
        dosages: Dosages,
    ) -> Result<Genotypes> {
        let expected = samples.len() * variants.len();
        if dosages.len() != expected {
            return Err(crate::ErrorKind::DimensionMismatch {
                what: "genotype dosages",
                expected,
                found: dosages.len(),
            }
            .into());
        }
        Ok(Genotypes {
            source: source.into(),
            samples,
            variants,
            dosages,
        })
    }

    /// The file read.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// Sample ids, in file order.
    pub fn samples(&self) -> &[String] {
        &self.samples
    }

    /// Variants, in file order (multi-allelic records split, one per ALT).
    pub fn variants(&self) -> &[Variant] {
        &self.variants
    }

    /// The dosage matrix.
    pub fn dosages(&self) -> &Dosages {
        &self.dosages
    }

    /// Number of samples.
    pub fn n_samples(&self) -> usize {
        self.samples.len()
    }

    /// Number of variants.
    pub fn n_variants(&self) -> usize {
        self.variants.len()
    }

    /// ALT copies of variant `v` in sample `s`; `NaN` when missing.
    ///
    /// # Panics
    /// If `v` or `s` is out of range.
    pub fn dosage(&self, v: usize, s: usize) -> f64 {
        let i = v * self.samples.len() + s;
        match &self.dosages {
            Dosages::Calls(c) => match c[i] {
                MISSING_CALL => f64::NAN,
                x => x as f64,
            },
            Dosages::Values(d) => d[i] as f64,
        }
    }

    /// A feature name per variant: its id, or `chrom:pos:ref:alt` when it has
    /// none or its id is not unique in the file.
    ///
    /// # Errors
    /// [`crate::ErrorKind::Schema`] when two variants have the same
    /// chromosome, position and alleles.
    pub fn feature_names(&self) -> Result<Vec<String>> {
        let mut count: HashMap<String, usize> = HashMap::with_capacity(self.variants.len());
        for v in &self.variants {
            *count.entry(v.feature_name()).or_insert(0) += 1;
        }
        let names: Vec<String> = self
            .variants
            .iter()
            .map(|v| {
                let n = v.feature_name();
                if count.get(&n).copied().unwrap_or(0) > 1 {
                    v.locus_name()
                } else {
                    n
                }
            })
            .collect();
        let mut seen: HashMap<&str, usize> = HashMap::with_capacity(names.len());
        for (i, n) in names.iter().enumerate() {
            if let Some(first) = seen.insert(n.as_str(), i) {
                return Err(Error::schema(
                    Position::file(&self.source),
                    format!(
                        "variants {} and {} are the same site and alleles ({n}); remove one",
                        first + 1,
                        i + 1
                    ),
                ));
            }
        }
        Ok(names)
    }

    /// The genotypes as a table: one row per sample, one feature per variant
    /// (named by [`Genotypes::feature_names`]), `NaN` for a missing call.
    ///
    /// # Errors
    /// As [`Genotypes::feature_names`].
    pub fn to_table(&self) -> Result<Table> {
        let names = self.feature_names()?;
        let columns: Vec<Option<(usize, bool)>> =
            (0..self.n_variants()).map(|v| Some((v, false))).collect();
        self.gather(names, &columns)
    }

    /// The genotypes in a model's feature order, after matching: `sites[j]`
    /// says where model variant `j` is. An absent site is missing, or 0 ALT
    /// copies with `missing_as_ref`; an unusable one is missing.
    ///
    /// # Errors
    /// [`crate::ErrorKind::DimensionMismatch`] when `sites` and
    /// `model_features` differ in length.
    pub fn to_model_table(
        &self,
        model_features: &[String],
        sites: &[Site],
        missing_as_ref: bool,
    ) -> Result<Table> {
        if sites.len() != model_features.len() {
            return Err(crate::ErrorKind::DimensionMismatch {
                what: "matched sites",
                expected: model_features.len(),
                found: sites.len(),
            }
            .into());
        }
        let columns: Vec<Option<(usize, bool)>> = sites
            .iter()
            .map(|s| match s {
                Site::Found(m) => Some((m.index, m.orientation.is_swapped())),
                Site::Absent if missing_as_ref => None,
                _ => Some((usize::MAX, false)),
            })
            .collect();
        self.gather(model_features.to_vec(), &columns)
    }

    /// Builds the sample-major table: column `j` reads variant `columns[j]`
    /// (`(usize::MAX, _)` = missing, `None` = 0 copies), `2 − x` when swapped.
    fn gather(&self, names: Vec<String>, columns: &[Option<(usize, bool)>]) -> Result<Table> {
        let n = self.n_samples();
        let p = columns.len();
        let mut values = vec![f64::NAN; n * p];
        values
            .par_chunks_mut(p.max(1))
            .enumerate()
            .with_min_len(16)
            .for_each(|(s, row)| {
                for (out, c) in row.iter_mut().zip(columns) {
                    *out = match *c {
                        None => 0.0,
                        Some((usize::MAX, _)) => f64::NAN,
                        Some((v, swapped)) => {
                            let x = self.dosage(v, s);
                            if swapped { 2.0 - x } else { x }
                        }
                    };
                }
            });
        if p == 0 {
            values.clear();
        }
        Table::from_rows(self.samples.clone(), names, values)
            .map(|t| t.with_source(self.source.clone()))
    }
}

/// Checks sample ids are non-empty and unique; errors name the file.
pub(crate) fn check_samples(path: &Path, samples: &[String], what: &str) -> Result<()> {
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(samples.len());
    for (i, s) in samples.iter().enumerate() {
        if s.is_empty() {
            return Err(Error::schema(
                Position::file(path),
                format!("{what} {} has an empty sample id", i + 1),
            ));
        }
        if let Some(first) = seen.insert(s.as_str(), i) {
            return Err(Error::schema(
                Position::file(path),
                format!(
                    "duplicate sample id {s:?} ({what}s {} and {})",
                    first + 1,
                    i + 1
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::variants::{MatchOptions, match_variants};

    fn v(pos: u64, id: Option<&str>, r: &str, a: &str) -> Variant {
        Variant {
            chrom: "1".into(),
            pos,
            id: id.map(Into::into),
            ref_allele: r.into(),
            alt_allele: a.into(),
        }
    }

    #[test]
    fn table_is_sample_major_and_matching_swaps() {
        let g = Genotypes::new(
            "g.vcf",
            vec!["s1".into(), "s2".into()],
            vec![v(1, Some("rs1"), "A", "G"), v(2, None, "C", "T")],
            Dosages::Calls(vec![0, 1, 2, MISSING_CALL]),
        )
        .unwrap();
        let t = g.to_table().unwrap();
        assert_eq!(t.feature_names, vec!["rs1", "1:2:C:T"]);
        assert_eq!(t.row(0), &[0.0, 2.0]);
        assert!(t.row(1)[1].is_nan());
        let model = vec![
            v(2, None, "T", "C"),
            v(1, Some("rs1"), "A", "G"),
            v(9, None, "A", "C"),
        ];
        let (sites, _) = match_variants(&model, g.variants(), MatchOptions::default());
        let names = vec!["a".to_string(), "b".into(), "c".into()];
        let t = g.to_model_table(&names, &sites, false).unwrap();
        assert_eq!(&t.row(0)[..2], &[0.0, 0.0]);
        assert!(t.row(0)[2].is_nan());
        assert!(t.row(1)[0].is_nan());
        let t = g.to_model_table(&names, &sites, true).unwrap();
        assert_eq!(t.row(0)[2], 0.0);
    }
}
