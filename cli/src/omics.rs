//! A multi-omic synthetic cohort: four layers of different width, scale and
//! noise, and patients who leave the reference in one layer only.
//!
//! Members carry 300 genotype dosages (0/1/2, three ancestry groups), 2,000
//! noisy transcripts and 150 proteins driven by six latent biological
//! factors, and 40 low-noise metabolites on a three-dimensional manifold
//! spanned by the first three factors. Exchangeable patients (`truth = in`)
//! are drawn the same way; the others (`truth = out`) are the same except for
//! a perturbation of their metabolites orthogonal to the metabolite manifold,
//! which no other layer shows. [`write_omics`] writes `reference.csv`,
//! `patients.csv` and `blocks.csv` (`feature,block`); [`evaluate`] fits with
//! and without the blocks and measures how well `novelty` separates the two.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use nof1::rng::SplitMix64;
use nof1::{Error, Params, Result, Table};

/// Shape and seed of the cohort.
#[derive(Debug, Clone)]
pub struct OmicsParams {
    /// Reference members.
    pub n: usize,
    /// Exchangeable patients.
    pub n_in: usize,
    /// Patients off the metabolite manifold.
    pub n_out: usize,
    /// Genotype, transcript, protein and metabolite columns.
    pub widths: [usize; 4],
    /// Per-feature standard deviation of the off-manifold metabolite shift.
    pub shift: f64,
    /// Seed.
    pub seed: u64,
}

impl Default for OmicsParams {
    fn default() -> Self {
        OmicsParams {
            n: 3_000,
            n_in: 500,
            n_out: 500,
            widths: [300, 2_000, 150, 40],
            shift: 0.1,
            seed: 1,
        }
    }
}

/// Block names, in column order.
pub const BLOCK_NAMES: [&str; 4] = ["genome", "transcriptome", "proteome", "metabolome"];
const PREFIXES: [&str; 4] = ["snp", "tx", "prot", "met"];
/// Latent biological factors behind transcripts and proteins.
const FACTORS: usize = 6;
/// Factors the metabolite manifold is spanned by.
const METABOLITE_FACTORS: usize = 3;
const TRANSCRIPT_NOISE: f64 = 3.0;
const PROTEIN_NOISE: f64 = 1.0;
const METABOLITE_NOISE: f64 = 0.05;

/// The fixed random structure of a cohort.
struct Structure {
    widths: [usize; 4],
    /// Allele frequency of each SNP in each of 3 ancestry groups.
    freq: Vec<[f64; 3]>,
    /// Transcript and protein loadings, `(width × FACTORS)` each.
    tx: Vec<f64>,
    prot: Vec<f64>,
    /// Metabolite loadings `40 × METABOLITE_FACTORS` and an orthonormal basis
    /// of their column space (`40 × METABOLITE_FACTORS`).
    met: Vec<f64>,
    met_basis: Vec<f64>,
    /// Per-feature location and scale (so standardisation matters).
    location: Vec<f64>,
    scale: Vec<f64>,
}

impl Structure {
    fn new(params: &OmicsParams) -> Structure {
        let [g, t, pr, m] = params.widths;
        let mut rng = SplitMix64::new(params.seed ^ 0x0031_c5a7_e3f1);
        let freq = (0..g)
            .map(|_| {
                let base = 0.05 + 0.45 * rng.next_f64();
                let mut f = [0.0; 3];
                for x in &mut f {
                    *x = (base + 0.15 * rng.normal()).clamp(0.01, 0.99);
                }
                f
            })
            .collect();
        let mut draw = |rows: usize, cols: usize| -> Vec<f64> {
            (0..rows * cols).map(|_| rng.normal()).collect()
        };
        let tx = draw(t, FACTORS);
        let prot = draw(pr, FACTORS);
        let met = draw(m, METABOLITE_FACTORS);
        let met_basis = orthonormal_columns(&met, m, METABOLITE_FACTORS);
        let p = g + t + pr + m;
        let mut location = vec![0.0; p];
        let mut scale = vec![1.0; p];
        for j in g..p {
            location[j] = 10.0 * rng.normal();
            scale[j] = (1.5 * rng.normal()).exp();
        }
        Structure {
            widths: params.widths,
            freq,
            tx,
            prot,
            met,
            met_basis,
            location,
            scale,
        }
    }

    fn p(&self) -> usize {
        self.widths.iter().sum()
    }

    /// One row; `shift > 0` moves the metabolites off their manifold.
    fn draw(&self, rng: &mut SplitMix64, shift: f64, row: &mut [f64]) {
        let [g, t, pr, m] = self.widths;
        let group = rng.below(3);
        for (j, f) in self.freq.iter().enumerate() {
            let f = f[group];
            row[j] = ((rng.next_f64() < f) as u8 + (rng.next_f64() < f) as u8) as f64;
        }
        let factors: Vec<f64> = (0..FACTORS).map(|_| rng.normal()).collect();
        let mut at = g;
        for (w, load, noise) in [
            (t, &self.tx, TRANSCRIPT_NOISE),
            (pr, &self.prot, PROTEIN_NOISE),
        ] {
            for j in 0..w {
                let s: f64 = (0..FACTORS)
                    .map(|k| load[j * FACTORS + k] * factors[k])
                    .sum();
                row[at + j] = s + noise * rng.normal();
            }
            at += w;
        }
        let mut off = vec![0.0; m];
        if shift > 0.0 {
            for x in off.iter_mut() {
                *x = shift * rng.normal();
            }
            // Remove the part along the manifold.
            let r = METABOLITE_FACTORS;
            for k in 0..r {
                let d: f64 = (0..m).map(|j| self.met_basis[j * r + k] * off[j]).sum();
                for (j, x) in off.iter_mut().enumerate() {
                    *x -= d * self.met_basis[j * r + k];
                }
            }
        }
        for j in 0..m {
            let s: f64 = (0..METABOLITE_FACTORS)
                .map(|k| self.met[j * METABOLITE_FACTORS + k] * factors[k])
                .sum();
            row[at + j] = s + METABOLITE_NOISE * rng.normal() + off[j];
        }
        for ((x, loc), sc) in row.iter_mut().zip(&self.location).zip(&self.scale).skip(g) {
            *x = loc + sc * *x;
        }
    }

    fn names(&self) -> Vec<String> {
        let mut out = Vec::with_capacity(self.p());
        for (b, &w) in self.widths.iter().enumerate() {
            for j in 0..w {
                out.push(format!("{}{j}", PREFIXES[b]));
            }
        }
        out
    }
}

/// Gram–Schmidt on the columns of a row-major `rows × cols` matrix.
fn orthonormal_columns(a: &[f64], rows: usize, cols: usize) -> Vec<f64> {
    let mut q = a.to_vec();
    for k in 0..cols {
        for prev in 0..k {
            let d: f64 = (0..rows)
                .map(|j| q[j * cols + prev] * q[j * cols + k])
                .sum();
            for j in 0..rows {
                q[j * cols + k] -= d * q[j * cols + prev];
            }
        }
        let norm = (0..rows)
            .map(|j| q[j * cols + k] * q[j * cols + k])
            .sum::<f64>()
            .sqrt()
            .max(1e-300);
        for j in 0..rows {
            q[j * cols + k] /= norm;
        }
    }
    q
}

/// The cohort in memory: reference, patients, their truth (`true` = off the
/// metabolite manifold) and each feature's block.
pub struct Omics {
    /// Reference members.
    pub reference: Table,
    /// Patients: `n_in` exchangeable, then `n_out` shifted, interleaved.
    pub patients: Table,
    /// Whether each patient is off the metabolite manifold.
    pub truth: Vec<bool>,
    /// `(feature, block)` for every feature.
    pub blocks: Vec<(String, String)>,
}

/// Generates the cohort (deterministic given the parameters).
///
/// # Errors
/// [`nof1::ErrorKind::InvalidParam`] when a size is zero or `shift` is not positive.
pub fn generate(params: &OmicsParams) -> Result<Omics> {
    if params.n < 20 || params.widths.contains(&0) || params.n_in + params.n_out == 0 {
        return Err(Error::param(
            "omics",
            "needs at least 20 members, a patient and every block non-empty",
        ));
    }
    if params.widths[3] <= METABOLITE_FACTORS {
        return Err(Error::param(
            "omics",
            "needs more than 3 metabolite columns",
        ));
    }
    if !(params.shift > 0.0 && params.shift.is_finite()) {
        return Err(Error::param(
            "shift",
            format!("must be positive, got {}", params.shift),
        ));
    }
    let s = Structure::new(params);
    let p = s.p();
    let names = s.names();
    let mut rng = SplitMix64::new(params.seed ^ 0x5eed_0001);
    let mut values = vec![0.0; params.n * p];
    for row in values.chunks_exact_mut(p) {
        s.draw(&mut rng, 0.0, row);
    }
    let reference = Table::from_rows(
        (0..params.n).map(|i| format!("r{i}")).collect(),
        names.clone(),
        values,
    )?;
    let total = params.n_in + params.n_out;
    let mut truth = vec![false; total];
    for t in truth.iter_mut().take(params.n_out) {
        *t = true;
    }
    let mut pick = SplitMix64::new(params.seed ^ 0x5eed_0002);
    pick.shuffle(&mut truth);
    let mut rng = SplitMix64::new(params.seed ^ 0x5eed_0003);
    let mut values = vec![0.0; total * p];
    for (row, &out) in values.chunks_exact_mut(p).zip(&truth) {
        s.draw(&mut rng, if out { params.shift } else { 0.0 }, row);
    }
    let patients = Table::from_rows(
        (0..total).map(|i| format!("p{i}")).collect(),
        names.clone(),
        values,
    )?;
    let mut blocks = Vec::with_capacity(p);
    let mut it = names.into_iter();
    for (b, &w) in params.widths.iter().enumerate() {
        for name in it.by_ref().take(w) {
            blocks.push((name, BLOCK_NAMES[b].to_string()));
        }
    }
    Ok(Omics {
        reference,
        patients,
        truth,
        blocks,
    })
}

/// Files written by [`write_omics`].
#[derive(Debug, Clone)]
pub struct OmicsFiles {
    /// `reference.csv`.
    pub reference: PathBuf,
    /// `patients.csv` (last column `truth`: `in` / `out`).
    pub patients: PathBuf,
    /// `blocks.csv` (`feature,block`).
    pub blocks: PathBuf,
}

fn write_table(path: &Path, t: &Table, truth: Option<&[bool]>) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| Error::io(path, e))?;
    let mut w = std::io::BufWriter::new(file);
    let mut line = String::from("id");
    for n in t.feature_names() {
        line.push(',');
        line.push_str(n);
    }
    if truth.is_some() {
        line.push_str(",truth");
    }
    writeln!(w, "{line}").map_err(|e| Error::io(path, e))?;
    for i in 0..t.n_rows() {
        line.clear();
        line.push_str(&t.ids()[i]);
        for &v in t.row(i) {
            if v.fract() == 0.0 && v.abs() < 1e15 {
                let _ = write!(line, ",{}", v as i64);
            } else {
                let _ = write!(line, ",{v:.6}");
            }
        }
        if let Some(tr) = truth {
            line.push_str(if tr[i] { ",out" } else { ",in" });
        }
        writeln!(w, "{line}").map_err(|e| Error::io(path, e))?;
    }
    w.flush().map_err(|e| Error::io(path, e))
}

/// Writes `reference.csv`, `patients.csv` and `blocks.csv` into `out_dir`.
///
/// # Errors
/// As [`generate`]; [`nof1::ErrorKind::Io`] naming a file that could not be written.
pub fn write_omics(params: &OmicsParams, out_dir: &Path) -> Result<OmicsFiles> {
    let o = generate(params)?;
    std::fs::create_dir_all(out_dir).map_err(|e| Error::io(out_dir, e))?;
    let files = OmicsFiles {
        reference: out_dir.join("reference.csv"),
        patients: out_dir.join("patients.csv"),
        blocks: out_dir.join("blocks.csv"),
    };
    write_table(&files.reference, &o.reference, None)?;
    write_table(&files.patients, &o.patients, Some(&o.truth))?;
    let mut text = String::from("feature,block\n");
    for (f, b) in &o.blocks {
        let _ = writeln!(text, "{f},{b}");
    }
    std::fs::write(&files.blocks, text).map_err(|e| Error::io(&files.blocks, e))?;
    Ok(files)
}

/// How well one fit separates the shifted patients.
#[derive(Debug, Clone)]
pub struct OmicsQuality {
    /// AUROC of `novelty`, shifted vs exchangeable patients.
    pub auroc: f64,
    /// Shifted patients called `invisible`.
    pub recall: f64,
    /// Exchangeable patients called `invisible`.
    pub false_invisible: f64,
    /// Share of flagged (`invisible`) patients whose reason names the metabolome.
    pub block_named: f64,
    /// Flagged patients.
    pub n_flagged: usize,
    /// Fit wall time in seconds.
    pub fit_seconds: f64,
}

/// Fits on the cohort (with the blocks when `with_blocks`) and measures the
/// separation of the patients.
///
/// # Errors
/// From fitting.
pub fn evaluate(o: &Omics, params: &Params, with_blocks: bool) -> Result<OmicsQuality> {
    let params = if with_blocks {
        let mut spec = nof1::table::blocks::BlockSpec {
            source: PathBuf::from("<omics blocks>"),
            entries: Vec::new(),
        };
        for (i, (f, b)) in o.blocks.iter().enumerate() {
            spec.entries.push(nof1::table::blocks::BlockEntry {
                feature: f.clone(),
                block: b.clone(),
                line: i as u64 + 2,
            });
        }
        params.clone().blocks(Some(spec))
    } else {
        params.clone()
    };
    let t0 = std::time::Instant::now();
    let model = params.fit(&o.reference)?;
    let fit_seconds = t0.elapsed().as_secs_f64();
    let out = model.assess(&o.patients)?;
    let scores: Vec<f64> = out.iter().map(|a| a.novelty).collect();
    let auroc = crate::eval::auroc(&scores, &o.truth);
    let invisible: Vec<bool> = out
        .iter()
        .map(|a| a.verdict == nof1::Verdict::Invisible)
        .collect();
    let n_out = o.truth.iter().filter(|&&t| t).count().max(1);
    let n_in = o.truth.iter().filter(|&&t| !t).count().max(1);
    let recall = invisible
        .iter()
        .zip(&o.truth)
        .filter(|(v, t)| **v && **t)
        .count() as f64
        / n_out as f64;
    let false_invisible = invisible
        .iter()
        .zip(&o.truth)
        .filter(|(v, t)| **v && !**t)
        .count() as f64
        / n_in as f64;
    let n_flagged = invisible.iter().filter(|&&v| v).count();
    let named = out
        .iter()
        .filter(|a| a.verdict == nof1::Verdict::Invisible && a.reason.contains("metabolome"))
        .count();
    Ok(OmicsQuality {
        auroc,
        recall,
        false_invisible,
        block_named: named as f64 / n_flagged.max(1) as f64,
        n_flagged,
        fit_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cohort_is_deterministic_and_shaped() {
        let params = OmicsParams {
            n: 50,
            n_in: 5,
            n_out: 5,
            widths: [6, 20, 5, 8],
            ..OmicsParams::default()
        };
        let a = generate(&params).unwrap();
        let b = generate(&params).unwrap();
        assert_eq!(a.reference.values(), b.reference.values());
        assert_eq!(a.reference.n_features(), 39);
        assert_eq!(a.truth.iter().filter(|&&t| t).count(), 5);
        assert_eq!(a.blocks[38], ("met7".to_string(), "metabolome".to_string()));
        assert!(
            a.reference.values()[..6]
                .iter()
                .all(|v| [0.0, 1.0, 2.0].contains(v))
        );
    }
}
