//! Variant identity and matching a patient file's variants to a model's.
//!
//! A model fitted on genotypes (VCF, BCF, PLINK) keeps each feature's
//! [`Variant`]: chromosome, position, reference and alternate allele, and id.
//! At assess, [`match_variants`] finds each model variant in the patient file:
//!
//! - by normalised `chrom:pos` ([`normalise_chrom`]: a `chr` prefix is
//!   dropped, `M` is `MT`, PLINK's numeric 23-26 are X, Y, XY, MT), then, when
//!   nothing is found there, by id (ids are aliases);
//! - alleles as in the model: the dosage is used as is ([`Orientation::Same`]);
//! - REF and ALT swapped: the dosage becomes `2 − x` ([`Orientation::Swapped`]);
//! - the other strand (alleles complemented, A↔T, C↔G): used as is, or
//!   `2 − x` when also swapped ([`Orientation::Flipped`],
//!   [`Orientation::FlippedSwapped`]);
//! - strand-ambiguous SNPs (A/T or C/G, whose complement is their swap):
//!   VCF and BCF are on the forward strand by specification, so such a site is
//!   read as written, same or swapped, and counted as `ambiguous`;
//!   [`MatchOptions::drop_ambiguous`] makes it missing instead;
//! - any other allele pair is a mismatch and the site is missing.
//!
//! The counts are a [`MatchReport`]; see docs/formats.md, "Variant matching".

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// One biallelic variant: where it is and which allele is counted.
///
/// Dosages count copies of `alt` (0, 1 or 2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    /// Chromosome, as written in the file.
    pub chrom: String,
    /// 1-based position.
    pub pos: u64,
    /// Variant id (e.g. an rsID); `None` when the file has `.` or nothing.
    pub id: Option<String>,
    /// Reference allele.
    pub ref_allele: String,
    /// Alternate allele (the one counted).
    pub alt_allele: String,
}

impl Variant {
    /// The variant's name as a feature: its id when it has one, else
    /// `chrom:pos:ref:alt` (chromosome normalised).
    pub fn feature_name(&self) -> String {
        match &self.id {
            Some(id) => id.clone(),
            None => self.locus_name(),
        }
    }

    /// `chrom:pos:ref:alt`, chromosome normalised.
    pub fn locus_name(&self) -> String {
        format!(
            "{}:{}:{}:{}",
            normalise_chrom(&self.chrom),
            self.pos,
            self.ref_allele,
            self.alt_allele
        )
    }
}

/// A chromosome name in one spelling: without a `chr` prefix (any case),
/// `M` → `MT`, and PLINK's numeric codes 23, 24, 25, 26 → X, Y, XY, MT.
pub fn normalise_chrom(chrom: &str) -> String {
    let c = chrom.trim();
    let c = if c.len() > 3 && c[..3].eq_ignore_ascii_case("chr") {
        &c[3..]
    } else {
        c
    };
    match c.to_ascii_uppercase().as_str() {
        "M" | "MT" | "26" => "MT".to_string(),
        "23" => "X".to_string(),
        "24" => "Y".to_string(),
        "25" => "XY".to_string(),
        upper => upper.to_string(),
    }
}

/// The complement of an allele (A↔T, C↔G; other letters kept), upper case.
pub fn complement(allele: &str) -> String {
    allele
        .chars()
        .map(|c| match c.to_ascii_uppercase() {
            'A' => 'T',
            'T' => 'A',
            'C' => 'G',
            'G' => 'C',
            other => other,
        })
        .collect()
}

/// Whether a pair of alleles is strand-ambiguous (A/T or C/G): its
/// complement is its swap, so strand cannot be told from the alleles.
pub fn is_ambiguous(ref_allele: &str, alt_allele: &str) -> bool {
    let r = ref_allele.to_ascii_uppercase();
    let a = alt_allele.to_ascii_uppercase();
    r.len() == 1 && a.len() == 1 && complement(&r) == a
}

/// How a patient file's variant relates to the model's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orientation {
    /// Same alleles, same order.
    Same,
    /// REF and ALT swapped: dosage `2 − x`.
    Swapped,
    /// Other strand: complemented alleles, same order.
    Flipped,
    /// Other strand and swapped: dosage `2 − x`.
    FlippedSwapped,
}

impl Orientation {
    /// Whether the dosage is counted on the other allele (`2 − x`).
    pub fn is_swapped(self) -> bool {
        matches!(self, Orientation::Swapped | Orientation::FlippedSwapped)
    }
}

/// How to match variants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MatchOptions {
    /// Make strand-ambiguous (A/T, C/G) sites missing instead of reading them as written.
    pub drop_ambiguous: bool,
}

/// Counts of a variant match, over the model's variants.
///
/// `matched` = `same + swapped + flipped` (ambiguous sites are counted in
/// `same` or `swapped` as well as in `ambiguous`); `matched + missing +
/// mismatched + dropped_ambiguous = n_model`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchReport {
    /// Variants of the model.
    pub n_model: usize,
    /// Model variants found in the file with usable alleles.
    pub matched: usize,
    /// Of `matched`: same alleles in the same order.
    pub same: usize,
    /// Of `matched`: REF and ALT swapped (dosage `2 − x`).
    pub swapped: usize,
    /// Of `matched`: on the other strand (complemented; swapped or not).
    pub flipped: usize,
    /// Of `matched`: strand-ambiguous A/T or C/G sites read as written.
    pub ambiguous: usize,
    /// Strand-ambiguous sites made missing (`drop_ambiguous`).
    pub dropped_ambiguous: usize,
    /// Found by id only (the file's position differs from the model's).
    pub by_id: usize,
    /// Found at the position, but with other alleles: missing.
    pub mismatched: usize,
    /// Not in the file: missing.
    pub missing: usize,
    /// Variants of the file the model does not use.
    pub unused: usize,
}

impl MatchReport {
    /// One line for stderr.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{} of the model's {} variants matched ({} as is, {} REF/ALT swapped, {} on the other strand, {} strand-ambiguous A/T or C/G read as written",
            self.matched, self.n_model, self.same, self.swapped, self.flipped, self.ambiguous
        );
        if self.by_id > 0 {
            s.push_str(&format!(", {} by id only", self.by_id));
        }
        s.push_str(&format!(
            "); {} missing, {} with other alleles",
            self.missing, self.mismatched
        ));
        if self.dropped_ambiguous > 0 {
            s.push_str(&format!(", {} ambiguous dropped", self.dropped_ambiguous));
        }
        s.push_str(&format!("; {} variants of the file unused", self.unused));
        s
    }
}

/// Where a model variant is in the file: the file's variant index and how to read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteMatch {
    /// Index of the variant in the file.
    pub index: usize,
    /// How its dosage maps to the model's.
    pub orientation: Orientation,
}

/// What became of one model variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Site {
    /// Found, with usable alleles.
    Found(SiteMatch),
    /// Not in the file (`--missing-as-ref` reads it as 0 ALT copies).
    Absent,
    /// In the file but unusable: other alleles, or a dropped ambiguous site.
    Unusable,
}

impl Site {
    /// The match, when found.
    pub fn found(self) -> Option<SiteMatch> {
        match self {
            Site::Found(m) => Some(m),
            _ => None,
        }
    }
}

fn orientation(model: &Variant, file: &Variant) -> Option<Orientation> {
    let (mr, ma) = (
        model.ref_allele.to_ascii_uppercase(),
        model.alt_allele.to_ascii_uppercase(),
    );
    let (fr, fa) = (
        file.ref_allele.to_ascii_uppercase(),
        file.alt_allele.to_ascii_uppercase(),
    );
    if fr == mr && fa == ma {
        return Some(Orientation::Same);
    }
    if fr == ma && fa == mr {
        return Some(Orientation::Swapped);
    }
    let (cr, ca) = (complement(&fr), complement(&fa));
    if cr == mr && ca == ma {
        return Some(Orientation::Flipped);
    }
    if cr == ma && ca == mr {
        return Some(Orientation::FlippedSwapped);
    }
    None
}

/// Matches each model variant to the file's variants (see the module docs).
///
/// Returns one entry per model variant (in model order)
/// and the counts. When several file variants sit at a position, the first
/// with matching alleles is used; a file variant is used at most once.
pub fn match_variants(
    model: &[Variant],
    file: &[Variant],
    options: MatchOptions,
) -> (Vec<Site>, MatchReport) {
    let mut by_locus: HashMap<(String, u64), Vec<usize>> = HashMap::with_capacity(file.len());
    let mut by_id: HashMap<&str, Vec<usize>> = HashMap::with_capacity(file.len());
    for (i, v) in file.iter().enumerate() {
        by_locus
            .entry((normalise_chrom(&v.chrom), v.pos))
            .or_default()
            .push(i);
        if let Some(id) = &v.id {
            by_id.entry(id.as_str()).or_default().push(i);
        }
    }
    let mut used = vec![false; file.len()];
    let mut report = MatchReport {
        n_model: model.len(),
        ..MatchReport::default()
    };
    let mut out = Vec::with_capacity(model.len());
    for m in model {
        let at_locus = by_locus
            .get(&(normalise_chrom(&m.chrom), m.pos))
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let find = |candidates: &[usize]| {
            candidates.iter().find_map(|&i| {
                if used[i] {
                    return None;
                }
                orientation(m, &file[i]).map(|o| (i, o))
            })
        };
        let mut found = find(at_locus);
        let mut via_id = false;
        if found.is_none()
            && let Some(id) = &m.id
            && let Some(c) = by_id.get(id.as_str())
        {
            found = find(c);
            via_id = found.is_some();
        }
        let Some((index, orientation)) = found else {
            if at_locus.is_empty() {
                report.missing += 1;
                out.push(Site::Absent);
            } else {
                report.mismatched += 1;
                out.push(Site::Unusable);
            }
            continue;
        };
        let ambiguous = is_ambiguous(&m.ref_allele, &m.alt_allele);
        if ambiguous && options.drop_ambiguous {
            report.dropped_ambiguous += 1;
            out.push(Site::Unusable);
            continue;
        }
        // An ambiguous site's complement is its swap: read it as written.
        let orientation = match (ambiguous, orientation) {
            (true, Orientation::Flipped) => Orientation::Swapped,
            (true, Orientation::FlippedSwapped) => Orientation::Same,
            (_, o) => o,
        };
        used[index] = true;
        report.matched += 1;
        report.by_id += usize::from(via_id);
        report.ambiguous += usize::from(ambiguous);
        match orientation {
            Orientation::Same => report.same += 1,
            Orientation::Swapped => report.swapped += 1,
            Orientation::Flipped | Orientation::FlippedSwapped => report.flipped += 1,
        }
        out.push(Site::Found(SiteMatch { index, orientation }));
    }
    report.unused = used.iter().filter(|u| !**u).count();
    (out, report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(chrom: &str, pos: u64, id: Option<&str>, r: &str, a: &str) -> Variant {
        Variant {
            chrom: chrom.into(),
            pos,
            id: id.map(Into::into),
            ref_allele: r.into(),
            alt_allele: a.into(),
        }
    }

    #[test]
    fn chromosomes_normalise() {
        assert_eq!(normalise_chrom("chr7"), "7");
        assert_eq!(normalise_chrom("CHRX"), "X");
        assert_eq!(normalise_chrom("23"), "X");
        assert_eq!(normalise_chrom("chrM"), "MT");
        assert_eq!(normalise_chrom("GL000191.1"), "GL000191.1");
    }

    #[test]
    fn alleles_swap_flip_and_ambiguity() {
        let model = vec![
            v("1", 10, Some("rs1"), "A", "G"),
            v("1", 20, Some("rs2"), "C", "T"),
            v("1", 30, Some("rs3"), "A", "C"),
            v("1", 40, Some("rs4"), "A", "T"),
            v("2", 50, Some("rs5"), "G", "A"),
            v("2", 60, Some("rs6"), "G", "A"),
            v("2", 70, None, "G", "A"),
        ];
        let file = vec![
            v("chr1", 10, None, "A", "G"),
            v("chr1", 20, None, "T", "C"),
            v("chr1", 30, None, "T", "G"),
            v("chr1", 40, None, "T", "A"),
            v("chr2", 999, Some("rs5"), "G", "A"),
            v("chr2", 60, None, "G", "C"),
            v("chr3", 1, None, "G", "C"),
        ];
        let (m, r) = match_variants(&model, &file, MatchOptions::default());
        let o: Vec<Option<Orientation>> =
            m.iter().map(|s| s.found().map(|s| s.orientation)).collect();
        assert_eq!(
            o,
            vec![
                Some(Orientation::Same),
                Some(Orientation::Swapped),
                Some(Orientation::Flipped),
                Some(Orientation::Swapped),
                Some(Orientation::Same),
                None,
                None
            ]
        );
        assert_eq!(
            (r.matched, r.same, r.swapped, r.flipped, r.ambiguous),
            (5, 2, 2, 1, 1)
        );
        assert_eq!((r.by_id, r.mismatched, r.missing, r.unused), (1, 1, 1, 2));
        let (m, r) = match_variants(
            &model,
            &file,
            MatchOptions {
                drop_ambiguous: true,
            },
        );
        assert_eq!(m[3], Site::Unusable);
        assert_eq!((r.matched, r.dropped_ambiguous), (4, 1));
    }
}
