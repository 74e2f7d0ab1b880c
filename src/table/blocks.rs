//! Feature blocks (multi-omic layers): the `feature,block` file and its checks.
//!
//! A blocks file is a CSV or TSV (tab when the header line holds a tab) with
//! the header `feature,block` and one line per feature naming its layer, e.g.
//! `rs123,genotype` or `IL6,proteome`. Blank lines and lines starting with `#`
//! are skipped. Rules (docs/method.md, "Blocks"):
//!
//! * a feature the reference lacks, a feature listed twice (under the same
//!   block or two), an empty feature or block name, and a block none of
//!   whose features the model keeps (all constant or empty in the reference)
//!   are errors naming the file and line;
//! * reference features the file does not list form one more block named
//!   [`UNLISTED_BLOCK`] (they join the file's block of that name if it has one);
//! * a one-feature block is allowed: standardised, its first singular value
//!   is 1 per row, so its weight is 1 and its residual channel is that
//!   feature's own residual.
//!
//! Blocks are weighted the Multiple Factor Analysis way: each standardised
//! block is divided by its first singular value ([`mfa_eigenvalues`],
//! [`Blocks::feature_weights`]; computed on each fold model's training rows), so that no
//! block dominates the projection by its width or its scale.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Position, Result};

/// The block that collects reference features the blocks file does not list.
pub const UNLISTED_BLOCK: &str = "other";

/// Most blocks a model may have (each is a calibrated channel).
pub const MAX_BLOCKS: usize = 64;

/// Lanczos steps at most when computing a block's first eigenvalue.
const LANCZOS_STEPS: usize = 300;
/// [`top_eigenvalue`] stops when its Ritz pair's residual is at most this
/// fraction of the eigenvalue (the eigenvalue's own error is of the order of
/// the residual squared over the gap).
const LANCZOS_TOLERANCE: f64 = 1e-9;

/// One line of a blocks file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockEntry {
    /// The feature.
    pub feature: String,
    /// Its block.
    pub block: String,
    /// 1-based line in the file.
    pub line: u64,
}

/// A parsed blocks file, before it is matched to a reference.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlockSpec {
    /// The file (for messages).
    pub source: PathBuf,
    /// Its lines, in file order.
    pub entries: Vec<BlockEntry>,
}

/// Feature blocks as a fitted model keeps them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Blocks {
    /// Block names, in order of first appearance in the file
    /// ([`UNLISTED_BLOCK`] last when it collects unlisted features).
    pub names: Vec<String>,
    /// Block of each model feature (index into `names`), in model feature order.
    pub of_feature: Vec<u32>,
}

impl Blocks {
    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether there is no block.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Model features in each block.
    pub fn sizes(&self) -> Vec<usize> {
        let mut s = vec![0; self.names.len()];
        for &b in &self.of_feature {
            s[b as usize] += 1;
        }
        s
    }

    /// Per-feature weight `1 / sqrt(first_eigenvalue[b])` of the feature's
    /// block `b` (the MFA weight; `first_eigenvalue` from [`mfa_eigenvalues`]).
    pub fn feature_weights(&self, first_eigenvalue: &[f64]) -> Vec<f64> {
        self.of_feature
            .iter()
            .map(|&b| {
                1.0 / first_eigenvalue
                    .get(b as usize)
                    .copied()
                    .unwrap_or(1.0)
                    .max(1e-12)
                    .sqrt()
            })
            .collect()
    }

    /// The same blocks restricted to the features `kept` (indices into
    /// [`Blocks::of_feature`], ascending): the blocks of the projection's
    /// features.
    pub fn restrict(&self, kept: &[usize]) -> Blocks {
        Blocks {
            names: self.names.clone(),
            of_feature: kept.iter().map(|&j| self.of_feature[j]).collect(),
        }
    }
}

/// Reads a blocks file.
///
/// # Errors
/// [`crate::ErrorKind::Io`] when it cannot be read; [`crate::ErrorKind::Parse`]
/// or [`crate::ErrorKind::Schema`] (naming the line) as [`parse_blocks`].
pub fn read_blocks(path: &Path) -> Result<BlockSpec> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    parse_blocks(&text, path)
}

/// Parses the text of a blocks file; `source` names it in messages.
///
/// # Errors
/// A header other than `feature,block`, a line without two fields, an empty
/// feature or block name, a feature listed twice: each names `source` and
/// the line.
pub fn parse_blocks(text: &str, source: &Path) -> Result<BlockSpec> {
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i as u64 + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let Some((header_line, header)) = lines.next() else {
        return Err(Error::schema(
            Position::file(source),
            "empty blocks file: expected the header feature,block",
        ));
    };
    let sep = if header.contains('\t') { '\t' } else { ',' };
    let split = |l: &str| -> Vec<String> {
        l.split(sep)
            .map(|f| f.trim().trim_matches('"').to_string())
            .collect()
    };
    let head = split(header);
    if head.len() != 2
        || !head[0].eq_ignore_ascii_case("feature")
        || !head[1].eq_ignore_ascii_case("block")
    {
        return Err(Error::schema(
            Position::line(source, header_line),
            format!("expected the header feature,block, found {header:?}"),
        ));
    }
    let mut entries: Vec<BlockEntry> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (line, text) in lines {
        let fields = split(text);
        if fields.len() != 2 {
            return Err(Error::parse(
                Position::line(source, line),
                format!(
                    "expected 2 fields (feature, block), found {}: {text:?}",
                    fields.len()
                ),
            ));
        }
        let (feature, block) = (fields[0].clone(), fields[1].clone());
        if feature.is_empty() {
            return Err(Error::parse(
                Position::line(source, line),
                format!("empty feature name (block {block:?})"),
            ));
        }
        if block.is_empty() {
            return Err(Error::parse(
                Position::cell(source, line, feature.clone()),
                format!("feature {feature:?} has an empty block name"),
            ));
        }
        if let Some(&first) = seen.get(&feature) {
            let earlier = &entries[first];
            let how = if earlier.block == block {
                format!("again under block {block:?}")
            } else {
                format!("under two blocks ({:?} and {block:?})", earlier.block)
            };
            return Err(Error::schema(
                Position::cell(source, line, feature.clone()),
                format!(
                    "feature {feature:?} is listed {how}; first listed on line {}",
                    earlier.line
                ),
            ));
        }
        seen.insert(feature.clone(), entries.len());
        entries.push(BlockEntry {
            feature,
            block,
            line,
        });
    }
    if entries.is_empty() {
        return Err(Error::schema(
            Position::file(source),
            "the blocks file lists no feature",
        ));
    }
    Ok(BlockSpec {
        source: source.to_path_buf(),
        entries,
    })
}

impl BlockSpec {
    /// Matches the file to a reference: `reference_features` are every
    /// feature column of the reference, `model_features` the ones the model
    /// keeps (in model order), `projected[j]` whether model feature `j`
    /// enters the projection (it varies in the reference). Returns each
    /// block's name and the block of every model feature.
    ///
    /// # Errors
    /// A listed feature the reference lacks, a block with no projected
    /// feature, more than [`MAX_BLOCKS`] blocks: each names the file and line.
    pub fn resolve(
        &self,
        reference_features: &[String],
        model_features: &[String],
        projected: &[bool],
    ) -> Result<Blocks> {
        let in_reference: HashMap<&str, ()> = reference_features
            .iter()
            .map(|f| (f.as_str(), ()))
            .collect();
        let mut names: Vec<String> = Vec::new();
        let mut first_line: Vec<u64> = Vec::new();
        let mut block_of: HashMap<&str, u32> = HashMap::new();
        for e in &self.entries {
            if !in_reference.contains_key(e.feature.as_str()) {
                return Err(Error::schema(
                    Position::cell(&self.source, e.line, e.feature.clone()),
                    format!(
                        "feature {:?} (block {:?}) is not a feature column of the reference",
                        e.feature, e.block
                    ),
                ));
            }
            let b = match names.iter().position(|n| n == &e.block) {
                Some(b) => b,
                None => {
                    names.push(e.block.clone());
                    first_line.push(e.line);
                    names.len() - 1
                }
            };
            block_of.insert(e.feature.as_str(), b as u32);
        }
        let mut of_feature = Vec::with_capacity(model_features.len());
        let mut unlisted = None;
        for f in model_features {
            let b = match block_of.get(f.as_str()) {
                Some(&b) => b,
                None => *unlisted.get_or_insert_with(|| {
                    match names.iter().position(|n| n == UNLISTED_BLOCK) {
                        Some(b) => b as u32,
                        None => {
                            names.push(UNLISTED_BLOCK.to_string());
                            first_line.push(0);
                            (names.len() - 1) as u32
                        }
                    }
                }),
            };
            of_feature.push(b);
        }
        if names.len() > MAX_BLOCKS {
            return Err(Error::schema(
                Position::file(&self.source),
                format!(
                    "{} blocks; at most {MAX_BLOCKS} are allowed (each is a calibrated channel)",
                    names.len()
                ),
            ));
        }
        let mut sizes = vec![0usize; names.len()];
        for (j, &b) in of_feature.iter().enumerate() {
            if projected.get(j).copied().unwrap_or(true) {
                sizes[b as usize] += 1;
            }
        }
        if let Some(b) = sizes.iter().position(|&s| s == 0) {
            if first_line[b] == 0 {
                return Err(Error::schema(
                    Position::file(&self.source),
                    format!(
                        "the reference features the blocks file does not list (block {UNLISTED_BLOCK:?}) are all constant or empty in the reference; list them under a block"
                    ),
                ));
            }
            return Err(Error::schema(
                Position::line(&self.source, first_line[b]),
                format!(
                    "block {:?} is empty: every feature it lists is constant or empty in the reference (a block needs a feature that varies)",
                    names[b]
                ),
            ));
        }
        Ok(Blocks { names, of_feature })
    }
}

/// The first eigenvalue of each block's correlation matrix (the block's
/// squared first singular value divided by `n − 1`), by Lanczos
/// (`top_eigenvalue`) on the standardised rows `rows` of the row-major
/// `n × p` matrix `values` (missing values count as the mean, i.e. 0).
/// Deterministic: a fixed start vector and a fixed number of steps at most.
pub fn mfa_eigenvalues(
    values: &[f64],
    p: usize,
    rows: &[usize],
    mean: &[f64],
    scale: &[f64],
    blocks: &Blocks,
) -> Vec<f64> {
    let nb = blocks.len();
    let mut cols: Vec<Vec<usize>> = vec![Vec::new(); nb];
    for (j, &b) in blocks.of_feature.iter().enumerate() {
        cols[b as usize].push(j);
    }
    let denom = (rows.len().max(2) - 1) as f64;
    cols.iter()
        .map(|cols| {
            let q = cols.len();
            if q == 0 {
                return 1.0;
            }
            // The standardised block, row-major (rows × q).
            let z: Vec<f64> = rows
                .iter()
                .flat_map(|&r| {
                    cols.iter().map(move |&j| {
                        let x = values[r * p + j];
                        if x.is_nan() {
                            0.0
                        } else {
                            (x - mean[j]) / scale[j]
                        }
                    })
                })
                .collect();
            // A start vector with no exact symmetry.
            let mut v: Vec<f64> = (0..q)
                .map(|i| 1.0 + 0.5 * ((i as f64 * 0.618_033_988_75).fract() - 0.5))
                .collect();
            normalise(&mut v);
            let lambda = top_eigenvalue(&z, rows.len(), q, denom, v);
            if lambda.is_finite() && lambda > 0.0 {
                lambda
            } else {
                1.0
            }
        })
        .collect()
}

/// The largest eigenvalue of `ZᵀZ / denom` for the row-major `n × q` matrix
/// `z`, by Lanczos from the unit vector `v` with full reorthogonalisation:
/// it stops when the Ritz pair's residual `‖C y − θ y‖` (`β_k |s_k|` of the
/// tridiagonal's eigenvector `s`) is at most [`LANCZOS_TOLERANCE`] of `θ`,
/// the Krylov space is exhausted, or after [`LANCZOS_STEPS`] steps.
/// Krylov convergence depends on the square root of the relative gap, so a
/// noisy block (a first eigenvalue barely above the next) takes tens of
/// products where power iteration took hundreds.
fn top_eigenvalue(z: &[f64], n: usize, q: usize, denom: f64, v: Vec<f64>) -> f64 {
    let apply = |v: &[f64], w: &mut [f64]| {
        w.fill(0.0);
        for zr in z.chunks_exact(q).take(n) {
            let u: f64 = zr.iter().zip(v).map(|(a, b)| a * b).sum();
            for (wk, zk) in w.iter_mut().zip(zr) {
                *wk += u * zk;
            }
        }
        w.iter_mut().for_each(|x| *x /= denom);
    };
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mut basis: Vec<Vec<f64>> = vec![v];
    let (mut alpha, mut beta): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    let mut w = vec![0.0; q];
    let mut theta = 0.0;
    for k in 0..LANCZOS_STEPS.min(q) {
        apply(&basis[k], &mut w);
        alpha.push(dot(&w, &basis[k]));
        // Full reorthogonalisation, twice (classical Gram–Schmidt).
        for _ in 0..2 {
            for b in &basis {
                let c = dot(&w, b);
                w.iter_mut().zip(b).for_each(|(x, y)| *x -= c * y);
            }
        }
        let b_k = dot(&w, &w).sqrt();
        // The tridiagonal's largest eigenpair.
        let m = k + 1;
        let t = faer::Mat::<f64>::from_fn(m, m, |i, j| {
            if i == j {
                alpha[i]
            } else if i == j + 1 {
                beta[j]
            } else if j == i + 1 {
                beta[i]
            } else {
                0.0
            }
        });
        let Ok(evd) = t.self_adjoint_eigen(faer::Side::Lower) else {
            break;
        };
        theta = evd.S().column_vector()[m - 1];
        let last = evd.U()[(m - 1, m - 1)].abs();
        if b_k * last <= LANCZOS_TOLERANCE * theta.abs() || b_k <= 1e-300 {
            break;
        }
        beta.push(b_k);
        basis.push(w.iter().map(|x| x / b_k).collect());
    }
    theta
}

fn normalise(v: &mut [f64]) {
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        for x in v.iter_mut() {
            *x /= norm;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn err(text: &str) -> String {
        parse_blocks(text, Path::new("b.csv"))
            .and_then(|s| {
                s.resolve(
                    &names(&["a", "b", "c", "k"]),
                    &names(&["a", "b", "c", "k"]),
                    &[true, true, true, false],
                )
            })
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    }

    #[test]
    fn blocks_resolve_in_file_order_with_unlisted_features_last() {
        let spec = parse_blocks(
            "# layers\nfeature\tblock\nb\tgenome\n\na\tproteome\n",
            Path::new("b.tsv"),
        )
        .unwrap();
        assert_eq!(spec.entries[0].line, 3);
        let blocks = spec
            .resolve(
                &names(&["a", "b", "c"]),
                &names(&["a", "b", "c"]),
                &[true; 3],
            )
            .unwrap();
        assert_eq!(blocks.names, names(&["genome", "proteome", UNLISTED_BLOCK]));
        assert_eq!(blocks.of_feature, vec![1, 0, 2]);
        assert_eq!(blocks.sizes(), vec![1, 1, 1]);
    }

    #[test]
    fn bad_files_name_the_file_and_line() {
        assert!(err("feature,block\na,x\nzz,y\n").starts_with("b.csv:3:zz: feature \"zz\""));
        assert!(
            err("feature,block\na,x\nb,y\na,y\n").contains("b.csv:4:a: feature \"a\" is listed under two blocks (\"x\" and \"y\"); first listed on line 2")
        );
        assert!(err("feature,block\na,x\na,x\n").contains("listed again under block \"x\""));
        assert!(err("feature,block\na,\n").starts_with("b.csv:2:a:"));
        assert!(err("feature,block\n,x\n").starts_with("b.csv:2: empty feature name"));
        assert!(err("feat,blk\na,x\n").starts_with("b.csv:1: expected the header"));
        assert!(err("feature,block\na,x,y\n").starts_with("b.csv:2: expected 2 fields"));
        assert!(err("feature,block\n").contains("lists no feature"));
        // k is constant in the reference: the model does not keep it.
        let e = err("feature,block\na,x\nk,y\n");
        assert!(e.starts_with("b.csv:3: block \"y\" is empty"), "{e}");
    }

    #[test]
    fn lanczos_finds_the_largest_eigenvalue_of_a_noisy_block() {
        // Pure noise and a weak factor: leading eigenvalues close together.
        let mut rng = crate::rng::SplitMix64::new(9);
        for strength in [0.0, 0.3] {
            let (n, q) = (200, 60);
            let z: Vec<f64> = (0..n)
                .flat_map(|_| {
                    let f = rng.normal();
                    (0..q)
                        .map(|_| strength * f + rng.normal())
                        .collect::<Vec<_>>()
                })
                .collect();
            let denom = (n - 1) as f64;
            let c = faer::Mat::<f64>::from_fn(q, q, |a, b| {
                (0..n).map(|i| z[i * q + a] * z[i * q + b]).sum::<f64>() / denom
            });
            let ev = c.self_adjoint_eigenvalues(faer::Side::Lower).unwrap();
            let top = ev[q - 1];
            let mut v = vec![1.0; q];
            normalise(&mut v);
            let lambda = top_eigenvalue(&z, n, q, denom, v);
            assert!((lambda - top).abs() <= 1e-9 * top, "{lambda} vs {top}");
        }
    }

    #[test]
    fn first_eigenvalues_follow_the_block_structure() {
        // Block 0: 3 identical columns (eigenvalue 3); block 1: one column.
        let n = 50;
        let mut values = Vec::new();
        for i in 0..n {
            let t = (i as f64 * 0.7).sin();
            values.extend_from_slice(&[t, t, t, (i as f64 * 1.3).cos()]);
        }
        let st = crate::standardise::Standardiser::fit(&values, 4, 0..n);
        let blocks = Blocks {
            names: names(&["x", "y"]),
            of_feature: vec![0, 0, 0, 1],
        };
        let rows: Vec<usize> = (0..n).collect();
        let eig = mfa_eigenvalues(&values, 4, &rows, st.mean(), st.scale(), &blocks);
        let w = blocks.feature_weights(&eig);
        assert!((eig[0] - 3.0).abs() < 1e-6);
        assert!((eig[1] - 1.0).abs() < 1e-6);
        assert!((w[0] - 1.0 / 3f64.sqrt()).abs() < 1e-6);
    }
}
