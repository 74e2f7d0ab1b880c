//! What a model holds, in one value: the facts `nof1 inspect` prints.
//!
//! [`Model::summary`] describes a model in memory; [`ModelSummary::from_bytes`]
//! describes a model file without assembling its indexes (no k-d tree or
//! graph is built), and adds the file's format version, checksum and stored
//! sections. [`ModelSummary::to_text`] and [`ModelSummary::to_json`] render it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::format::{Container, decode_container};
use super::{ComponentChoice, IndexCheck, Model, ModelData, Params};
use crate::error::Result;
use crate::index::{ExactIndex, IndexKind};
use crate::table::preview_names;

/// Facts about the file a model was read from.
#[derive(Debug, Clone, PartialEq)]
pub struct FileFacts {
    /// The model file.
    pub path: PathBuf,
    /// Its format version.
    pub format_version: u32,
    /// The CRC-32 checksum of its header, verified on reading.
    pub checksum_crc32: u32,
    /// Length in bytes of its stored HNSW graph section, if it has one.
    pub hnsw_graph_bytes: Option<usize>,
}

/// How a model's exact search runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExactSearch {
    /// A k-d tree stored in the model file.
    KdTreeStored,
    /// A k-d tree built when the file is loaded (older format versions).
    KdTreeBuiltOnLoad,
    /// A k-d tree (a model in memory, not read from a file).
    KdTree,
    /// A full scan: small references, or more than
    /// [`crate::index::exact::KD_TREE_MAX_DIM`] search components.
    FullScan,
}

impl std::fmt::Display for ExactSearch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ExactSearch::KdTreeStored => "k-d tree stored",
            ExactSearch::KdTreeBuiltOnLoad => "k-d tree built on load",
            ExactSearch::KdTree => "k-d tree",
            ExactSearch::FullScan => "full scan",
        })
    }
}

/// Reference members of one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupCount {
    /// The group label.
    pub group: String,
    /// Its reference members.
    pub n: usize,
}

/// One scoring channel of a model and its prior weight in the combination.
#[derive(Debug, Clone, PartialEq)]
pub struct ChannelSummary {
    /// The channel's label: `knn`, `residual`, `value` or `block:NAME`.
    pub channel: String,
    /// Its prior weight in the combination (the weights sum to 1; see
    /// [`crate::calibrate::Scorer`]).
    pub weight: f64,
}

/// One feature block (multi-omic layer) of a model fitted with blocks.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockSummary {
    /// The block's name (`block:NAME` is its residual channel).
    pub name: String,
    /// Model features in the block.
    pub features: usize,
    /// Of those, the projected ones (not constant): the features its
    /// residual is taken over.
    pub projected: usize,
    /// First eigenvalue of the block's standardised correlation matrix, the
    /// mean over the fold models (each computes it on its training rows).
    pub first_eigenvalue: f64,
    /// The MFA weight of its features, `1 / sqrt(first_eigenvalue)`.
    pub mfa_weight: f64,
    /// Fewest leading components the block's coordinates use in a fold model.
    pub components_min: usize,
    /// Most leading components the block's coordinates use in a fold model.
    pub components_max: usize,
}

/// What the value channel holds: the reference's observed support of every
/// model feature.
#[derive(Debug, Clone, PartialEq)]
pub struct SupportSummary {
    /// Features with a stored support (every model feature).
    pub features: usize,
    /// Of those, integer-valued ones whose every value seen is kept with its
    /// count (the others keep a quantile sketch).
    pub integer_valued: usize,
    /// Features every reference member showed the same value of, by name.
    pub constant: Vec<String>,
}

/// What a model holds (see the module documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSummary {
    /// The file the model was read from; `None` for [`Model::summary`].
    pub file: Option<FileFacts>,
    /// nof1 version that wrote the model.
    pub crate_version: String,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
    /// Reference members.
    pub reference_size: usize,
    /// Members whose densities the model keeps (`density` is computed
    /// against them): every member, or a seeded sample where each member's
    /// search costs too much (docs/method.md §10).
    pub density_members: usize,
    /// Model features.
    pub n_features: usize,
    /// Model features in the projection (the others are constant in the
    /// reference: kept for the value channel, not projected).
    pub projected_features: usize,
    /// Model features constant in the reference, kept for the value channel
    /// and not projected.
    pub constant_features: Vec<String>,
    /// Reference columns dropped: empty ones, and constant ones when the
    /// value channel is off.
    pub dropped_features: Vec<String>,
    /// Variant identities stored, for a model fitted on genotypes (genotype
    /// patients are then matched by position and alleles); `None` otherwise.
    pub n_variants: Option<usize>,
    /// How the components were chosen.
    pub components: ComponentChoice,
    /// The parameters (checked).
    pub params: Params,
    /// Pooled calibration scores.
    pub calibration_size: usize,
    /// How the calibration scores were obtained.
    pub calibration_method: String,
    /// Conformal scheme: split or cross-conformal (docs/method.md §4).
    pub calibration_scheme: crate::calibrate::Scheme,
    /// Fold models patients are scored by (1 under split conformal).
    pub folds: usize,
    /// Whether calibration is kept per reference group.
    pub mondrian: bool,
    /// The pooled support radius.
    pub support_radius: f64,
    /// The index kind.
    pub index_kind: IndexKind,
    /// Agreement of the HNSW graph with exact search, measured at fit.
    pub index_check: Option<IndexCheck>,
    /// How exact search runs.
    pub exact_search: ExactSearch,
    /// Reference members per group, in group order (empty without groups).
    pub groups: Vec<GroupCount>,
    /// The channels scored, in the model's channel order, with their prior
    /// weights.
    pub channels: Vec<ChannelSummary>,
    /// The feature blocks, in block order (empty without `--blocks`).
    pub blocks: Vec<BlockSummary>,
    /// The value channel's observed support (`None` without the value
    /// channel and in files of format version 5 and earlier).
    pub value_support: Option<SupportSummary>,
}

impl Model {
    /// What this model holds (`file` is `None`; see [`ModelSummary::from_bytes`]
    /// for a model file).
    pub fn summary(&self) -> ModelSummary {
        let search = if self.exact.tree_layout().is_some() {
            ExactSearch::KdTree
        } else {
            ExactSearch::FullScan
        };
        ModelSummary::of(&self.data, None, search)
    }
}

/// The channels of the model's first fold model (every fold model scores
/// the same list) with their weights.
fn channel_summaries(data: &ModelData) -> Vec<ChannelSummary> {
    let Some(fold) = data.calibration.folds.first() else {
        return Vec::new();
    };
    fold.state
        .channels()
        .iter()
        .enumerate()
        .map(|(j, c)| ChannelSummary {
            channel: c.label(&fold.state),
            weight: fold.scorer.weights.get(j).copied().unwrap_or(f64::NAN),
        })
        .collect()
}

/// The blocks of a model fitted with blocks: sizes from the first fold
/// model's blocks, eigenvalues averaged over the fold models.
fn block_summaries(data: &ModelData) -> Vec<BlockSummary> {
    let states: Vec<&crate::calibrate::BlockState> = data
        .calibration
        .folds
        .iter()
        .filter_map(|f| f.state.extra.blocks.as_ref())
        .collect();
    let Some(first) = states.first() else {
        return Vec::new();
    };
    let st = &data.projector.standardiser;
    let nb = first.len();
    let mut features = vec![0usize; nb];
    let mut projected = vec![0usize; nb];
    for (j, &b) in first.blocks.of_feature.iter().enumerate() {
        if let Some(n) = features.get_mut(b as usize) {
            *n += 1;
            if st.is_active(j) {
                projected[b as usize] += 1;
            }
        }
    }
    (0..nb)
        .map(|b| {
            let eig: Vec<f64> = states
                .iter()
                .filter_map(|s| s.first_eigenvalue.get(b).copied())
                .collect();
            let first_eigenvalue = eig.iter().sum::<f64>() / eig.len().max(1) as f64;
            BlockSummary {
                name: first.name(b).to_string(),
                features: features[b],
                projected: projected[b],
                first_eigenvalue,
                mfa_weight: 1.0 / first_eigenvalue.max(1e-12).sqrt(),
                components_min: states.iter().map(|s| s.n_components).min().unwrap_or(0),
                components_max: states.iter().map(|s| s.n_components).max().unwrap_or(0),
            }
        })
        .collect()
}

fn support_summary(m: &crate::marginal::Marginals, features: &[String]) -> SupportSummary {
    use crate::marginal::SupportKind;
    SupportSummary {
        features: m.len(),
        integer_valued: m
            .support
            .iter()
            .filter(|s| matches!(s.kind, SupportKind::Discrete { .. }))
            .count(),
        constant: m
            .support
            .iter()
            .zip(features)
            .filter(|(s, _)| s.is_constant())
            .map(|(_, f)| f.clone())
            .collect(),
    }
}

impl ModelSummary {
    /// The summary of a model file's bytes (`path` names it in messages and
    /// in [`FileFacts`]); the file is decoded and checked, its indexes are
    /// not assembled.
    ///
    /// # Errors
    /// As [`super::format::decode_container`].
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<ModelSummary> {
        Ok(Self::of_container(decode_container(bytes, path)?, path))
    }

    fn of_container(c: Container, path: &Path) -> ModelSummary {
        let search = if c.has_search_tree() {
            ExactSearch::KdTreeStored
        } else if ExactIndex::uses_tree(c.data.reference.len(), c.data.components.knn_components) {
            ExactSearch::KdTreeBuiltOnLoad
        } else {
            ExactSearch::FullScan
        };
        let file = FileFacts {
            path: path.to_path_buf(),
            format_version: c.version,
            checksum_crc32: c.checksum,
            hnsw_graph_bytes: c.graph_len(),
        };
        Self::of(&c.data, Some(file), search)
    }

    fn of(data: &ModelData, file: Option<FileFacts>, exact_search: ExactSearch) -> ModelSummary {
        let mut groups: Vec<GroupCount> = data
            .reference
            .group_names
            .iter()
            .map(|g| GroupCount {
                group: g.clone(),
                n: 0,
            })
            .collect();
        if let Some(codes) = &data.reference.groups {
            for &c in codes {
                if let Some(slot) = groups.get_mut(c as usize) {
                    slot.n += 1;
                }
            }
        }
        let cal = &data.calibration;
        let st = &data.projector.standardiser;
        let constant_features: Vec<String> = data
            .features
            .iter()
            .enumerate()
            .filter(|&(j, _)| !st.is_active(j))
            .map(|(_, f)| f.clone())
            .collect();
        ModelSummary {
            file,
            crate_version: data.crate_version.clone(),
            created: data.created,
            reference_size: data.reference.ids.len(),
            density_members: data.reference.density_members.len(),
            n_features: data.features.len(),
            projected_features: data.features.len() - constant_features.len(),
            constant_features,
            dropped_features: data.dropped_features.clone(),
            n_variants: data.variants.as_ref().map(Vec::len),
            components: data.components.clone(),
            params: data.params.clone(),
            calibration_size: cal.pooled.n_members,
            calibration_method: cal.method.clone(),
            calibration_scheme: cal.scheme,
            folds: cal.n_folds(),
            mondrian: cal.by_group.is_some(),
            support_radius: data.support_radius,
            index_kind: data.index_kind,
            index_check: data.index_check,
            exact_search,
            groups,
            channels: channel_summaries(data),
            blocks: block_summaries(data),
            value_support: data
                .support
                .as_ref()
                .map(|m| support_summary(m, &data.features)),
        }
    }

    /// The summary as the JSON object `nof1 inspect --json` prints (file
    /// fields are `null` for a model in memory).
    pub fn to_json(&self) -> serde_json::Value {
        let f = self.file.as_ref();
        let p = &self.params;
        let c = &self.components;
        let channels: Vec<serde_json::Value> = self
            .channels
            .iter()
            .map(|c| serde_json::json!({"channel": c.channel, "weight": c.weight}))
            .collect();
        let blocks: Vec<serde_json::Value> = self
            .blocks
            .iter()
            .map(|b| {
                serde_json::json!({
                    "block": b.name,
                    "features": b.features,
                    "projected": b.projected,
                    "first_eigenvalue": b.first_eigenvalue,
                    "mfa_weight": b.mfa_weight,
                    "components_min": b.components_min,
                    "components_max": b.components_max,
                })
            })
            .collect();
        let value_support = self.value_support.as_ref().map(|v| {
            serde_json::json!({
                "features": v.features,
                "integer_valued": v.integer_valued,
                "constant": v.constant,
            })
        });
        serde_json::json!({
            "format_version": f.map(|f| f.format_version),
            "crate_version": self.crate_version,
            "created": self.created,
            "checksum_crc32": f.map(|f| format!("{:08x}", f.checksum_crc32)),
            "reference_size": self.reference_size,
            "density_members": self.density_members,
            "features": self.n_features,
            "projected_features": self.projected_features,
            "constant_features": self.constant_features,
            "dropped_features": self.dropped_features,
            "variants": self.n_variants,
            "components": c.n_components,
            "knn_components": c.knn_components,
            "parallel_analysis_components": c.n_parallel,
            "variance_components": c.n_variance,
            "noise_likeness": c.noise_likeness,
            "component_rule": c.rule.to_string(),
            "explained_variance": c.explained,
            "eigenvalues": c.eigenvalues,
            "null_eigenvalues": c.null_eigenvalues,
            "k": p.k,
            "alpha": p.alpha,
            "warn_alpha": p.warn_alpha,
            "min_coverage": p.min_coverage,
            "seed": p.seed,
            "calibration_size": self.calibration_size,
            "calibration_method": self.calibration_method,
            "calibration_scheme": self.calibration_scheme.to_string(),
            "folds": self.folds,
            "mondrian": self.mondrian,
            "index": self.index_kind.to_string(),
            "index_check": self.index_check,
            "hnsw_graph_bytes": f.and_then(|f| f.hnsw_graph_bytes),
            "search_tree": self.exact_search.to_string(),
            "groups": self.groups.iter().map(|g| serde_json::json!({"group": g.group, "n": g.n})).collect::<Vec<_>>(),
            "channels": channels,
            "blocks": blocks,
            "value_support": value_support,
        })
    }

    /// The summary as the aligned text `nof1 inspect` prints, one fact per
    /// line, each line ending in `\n`.
    pub fn to_text(&self) -> String {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_text(&mut s);
        s
    }

    fn write_text(&self, out: &mut String) -> std::fmt::Result {
        let p = &self.params;
        let c = &self.components;
        if let Some(f) = &self.file {
            writeln!(out, "model            {}", f.path.display())?;
            writeln!(
                out,
                "format version   {} (written by nof1 {})",
                f.format_version, self.crate_version
            )?;
        } else {
            writeln!(out, "written by       nof1 {}", self.crate_version)?;
        }
        writeln!(
            out,
            "created          {} (seconds since 1970-01-01 UTC)",
            self.created
        )?;
        if let Some(f) = &self.file {
            writeln!(
                out,
                "checksum         crc32 {:08x} (verified)",
                f.checksum_crc32
            )?;
        }
        writeln!(out, "reference        {} members", self.reference_size)?;
        let mut notes = vec![format!("{} projected", self.projected_features)];
        if !self.constant_features.is_empty() {
            notes.push(format!(
                "{} constant, kept for the value channel: {}",
                self.constant_features.len(),
                preview_names(&self.constant_features)
            ));
        }
        notes.push(if self.dropped_features.is_empty() {
            "0 dropped".to_string()
        } else {
            format!(
                "{} dropped: {}",
                self.dropped_features.len(),
                preview_names(&self.dropped_features)
            )
        });
        writeln!(
            out,
            "features         {} ({})",
            self.n_features,
            notes.join("; ")
        )?;
        if let Some(n) = self.n_variants {
            writeln!(
                out,
                "variants         {n} (chrom, pos, ref, alt, id; genotype patients matched by position and alleles)"
            )?;
        }
        writeln!(
            out,
            "components       {} by {}; {:.1}% of variance",
            c.n_components,
            c.rule,
            c.explained * 100.0
        )?;
        let scree: Vec<String> = c
            .eigenvalues
            .iter()
            .take(10)
            .map(|e| format!("{e:.3}"))
            .collect();
        if c.n_parallel > 0 {
            writeln!(
                out,
                "rule detail      parallel analysis keeps {}, 95% variance needs {}; noise-likeness {:.3} ({} {})",
                c.n_parallel,
                c.n_variance,
                c.noise_likeness,
                if c.noise_likeness >= crate::project::NOISE_FLATNESS {
                    "≥"
                } else {
                    "<"
                },
                crate::project::NOISE_FLATNESS
            )?;
        }
        writeln!(out, "scree (top 10)   {}", scree.join(" "))?;
        if !c.null_eigenvalues.is_empty() {
            let null: Vec<String> = c
                .null_eigenvalues
                .iter()
                .take(10)
                .map(|e| format!("{e:.3}"))
                .collect();
            writeln!(out, "null 95% (PA)    {}", null.join(" "))?;
        }
        writeln!(out, "k                {}", p.k)?;
        writeln!(
            out,
            "alpha            {} (warn_alpha {})",
            p.alpha, p.warn_alpha
        )?;
        writeln!(out, "min coverage     {}", p.min_coverage)?;
        writeln!(
            out,
            "calibration      {} scores; {} ({}, {} fold model(s))",
            self.calibration_size, self.calibration_method, self.calibration_scheme, self.folds
        )?;
        writeln!(
            out,
            "support radius   {:.4} (kNN statistic above which the kNN channel alone gives p ≤ alpha)",
            self.support_radius
        )?;
        writeln!(
            out,
            "mondrian         {}",
            if self.mondrian { "per group" } else { "pooled" }
        )?;
        let mut index_notes = Vec::new();
        match self.index_check {
            Some(chk) if self.index_kind == IndexKind::Graph => index_notes.push(format!(
                "at fit, {} probes each: recall@{} {:.3} in distribution, {:.3} out of it (on the probes the graph searches itself); calibration and patients scored by the same search, far queries searched exactly",
                chk.probes, p.k, chk.recall_in, chk.recall_out
            )),
            Some(chk) => index_notes.push(format!(
                "at fit, {} probes each: recall@{} {:.3} in distribution, {:.3} out of it; {:.1}% of calibration members re-checked exactly",
                chk.probes,
                p.k,
                chk.recall_in,
                chk.recall_out,
                100.0 * chk.recheck_rate
            )),
            None if self.index_kind == IndexKind::Hnsw => {
                index_notes.push("recall not measured (version-1 model)".to_string())
            }
            None => index_notes.push("recall 1 by construction".to_string()),
        }
        index_notes.push(format!("exact search: {}", self.exact_search));
        if self.index_kind != IndexKind::Exact {
            let h = p.hnsw;
            index_notes.push(format!(
                "M {}, ef_search {}",
                h.max_connections, h.ef_search
            ));
            if let Some(f) = &self.file {
                index_notes.push(match f.hnsw_graph_bytes {
                    Some(len) => format!("graph stored ({len} bytes)"),
                    None => "graph rebuilt on load".to_string(),
                });
            }
        }
        writeln!(
            out,
            "index            {} ({})",
            self.index_kind,
            index_notes.join("; ")
        )?;
        self.write_channels(out)?;
        if self.density_members == self.reference_size {
            writeln!(out, "density          against every member")?;
        } else {
            writeln!(
                out,
                "density          against a seeded sample of {} of the {} members (a search per member costs too much in this embedding)",
                self.density_members, self.reference_size
            )?;
        }
        writeln!(out, "seed             {}", p.seed)?;
        if self.groups.is_empty() {
            writeln!(out, "groups           none")?;
        } else {
            let g: Vec<String> = self
                .groups
                .iter()
                .map(|g| format!("{} {}", g.group, g.n))
                .collect();
            writeln!(out, "groups           {}", g.join(", "))?;
        }
        Ok(())
    }

    /// The `channels`, `block` and `value support` lines.
    fn write_channels(&self, out: &mut String) -> std::fmt::Result {
        if !self.channels.is_empty() {
            let c: Vec<String> = self
                .channels
                .iter()
                .map(|c| format!("{} {:.3}", c.channel, c.weight))
                .collect();
            writeln!(out, "channels         {} (prior weights)", c.join(", "))?;
        }
        if let Some(v) = &self.value_support {
            writeln!(
                out,
                "value support    {} features ({} integer-valued with every value counted; {} constant{})",
                v.features,
                v.integer_valued,
                v.constant.len(),
                if v.constant.is_empty() {
                    String::new()
                } else {
                    format!(": {}", preview_names(&v.constant))
                }
            )?;
        }
        if !self.blocks.is_empty() {
            writeln!(
                out,
                "blocks           {} (MFA: each block's features weighted 1/sqrt(first eigenvalue), mean over {} fold model(s))",
                self.blocks.len(),
                self.folds
            )?;
        }
        for b in &self.blocks {
            let comps = if b.components_min == b.components_max {
                b.components_min.to_string()
            } else {
                format!("{}-{}", b.components_min, b.components_max)
            };
            writeln!(
                out,
                "block            {}: {} features ({} projected); first eigenvalue {:.3}, MFA weight {:.4}; residual channel block:{} on {} components",
                b.name, b.features, b.projected, b.first_eigenvalue, b.mfa_weight, b.name, comps
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::{Params, Table};

    #[test]
    fn summary_of_a_model_and_of_its_file_agree() {
        let mut values = Vec::new();
        for i in 0..120 {
            let t = i as f64 / 7.0;
            values.extend_from_slice(&[t.sin(), t.cos(), (2.0 * t).sin()]);
        }
        let ids = (0..120).map(|i| format!("r{i}")).collect();
        let names = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        let groups = (0..120).map(|i| format!("g{}", i % 2)).collect();
        let table = Table::from_rows(ids, names, values)
            .and_then(|t| t.with_groups(groups))
            .unwrap();
        let model = Params::default().k(5).fit(&table).unwrap();
        let mem = model.summary();
        assert!(mem.file.is_none());
        assert_eq!(mem.reference_size, 120);
        assert_eq!(mem.density_members, 120);
        assert!(
            mem.to_text()
                .contains("density          against every member")
        );
        assert_eq!(mem.groups.len(), 2);
        assert_eq!(mem.groups[0].n + mem.groups[1].n, 120);
        let bytes = model.to_bytes().unwrap();
        let file = super::ModelSummary::from_bytes(&bytes, "m.nof1".as_ref()).unwrap();
        let facts = file.file.clone().unwrap();
        assert_eq!(facts.format_version, super::super::format::FORMAT_VERSION);
        assert_eq!(
            facts.checksum_crc32,
            u32::from_le_bytes([bytes[20], bytes[21], bytes[22], bytes[23]])
        );
        assert_eq!(
            super::ModelSummary {
                file: None,
                exact_search: mem.exact_search,
                ..file.clone()
            },
            mem
        );
        let text = file.to_text();
        assert!(text.starts_with("model            m.nof1\n"), "{text}");
        assert!(text.contains("groups           g0 60, g1 60\n"), "{text}");
        assert_eq!(file.to_json()["reference_size"], 120);
    }

    #[test]
    fn summary_lists_blocks_channels_and_constant_features() {
        let n = 150;
        let mut values = Vec::new();
        for i in 0..n {
            let t = i as f64 / 9.0;
            // Block "a": three correlated columns; block "b": two; "k" constant.
            values.extend_from_slice(&[
                t.sin(),
                t.sin() + 0.1 * t.cos(),
                2.0 * t.sin(),
                (3.0 * t).cos(),
                (3.0 * t).cos() * 0.5 + 0.2 * (5.0 * t).sin(),
                7.0,
            ]);
        }
        let ids = (0..n).map(|i| format!("r{i}")).collect();
        let names: Vec<String> = ["a1", "a2", "a3", "b1", "b2", "k"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let table = Table::from_rows(ids, names, values).unwrap();
        let spec = crate::table::blocks::parse_blocks(
            "feature,block\na1,a\na2,a\na3,a\nb1,b\nb2,b\nk,b\n",
            "b.csv".as_ref(),
        )
        .unwrap();
        let model = Params::default()
            .k(5)
            .blocks(Some(spec))
            .fit(&table)
            .unwrap();
        let s = model.summary();
        assert_eq!(s.n_features, 6);
        assert_eq!(s.projected_features, 5);
        assert_eq!(s.constant_features, ["k"]);
        let labels: Vec<&str> = s.channels.iter().map(|c| c.channel.as_str()).collect();
        assert_eq!(labels, ["knn", "residual", "value", "block:a", "block:b"]);
        let w: f64 = s.channels.iter().map(|c| c.weight).sum();
        assert!((w - 1.0).abs() < 1e-12, "{w}");
        // The constant column is in block b, not projected.
        let sizes: Vec<(&str, usize, usize)> = s
            .blocks
            .iter()
            .map(|b| (b.name.as_str(), b.features, b.projected))
            .collect();
        assert_eq!(sizes, [("a", 3, 3), ("b", 3, 2)]);
        let folds = &model.data.calibration.folds;
        let mean_a = folds
            .iter()
            .map(|f| f.state.extra.blocks.as_ref().unwrap().first_eigenvalue[0])
            .sum::<f64>()
            / folds.len() as f64;
        assert!((s.blocks[0].first_eigenvalue - mean_a).abs() < 1e-12);
        // Three nearly collinear columns: a first eigenvalue near 3.
        assert!(s.blocks[0].first_eigenvalue > 2.5, "{:?}", s.blocks[0]);
        assert!((s.blocks[0].mfa_weight - 1.0 / mean_a.sqrt()).abs() < 1e-12);
        let v = s.value_support.as_ref().unwrap();
        assert_eq!((v.features, v.constant.clone()), (6, vec!["k".to_string()]));
        // The file says the same.
        let file =
            super::ModelSummary::from_bytes(&model.to_bytes().unwrap(), "m.nof1".as_ref()).unwrap();
        assert_eq!(file.blocks, s.blocks);
        assert_eq!(file.channels, s.channels);
        assert_eq!(file.value_support, s.value_support);
        let text = file.to_text();
        assert!(
            text.contains("features         6 (5 projected; 1 constant, kept for the value channel: k; 0 dropped)\n"),
            "{text}"
        );
        assert!(
            text.contains("\nblock            a: 3 features (3 projected); first eigenvalue "),
            "{text}"
        );
        assert!(text.contains("\nblocks           2 (MFA"), "{text}");
        let json = file.to_json();
        assert_eq!(json["blocks"][1]["block"], "b");
        assert_eq!(json["channels"][4]["channel"], "block:b");
        assert_eq!(json["constant_features"][0], "k");
    }
}
