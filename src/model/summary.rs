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
    /// Model features.
    pub n_features: usize,
    /// Reference columns dropped as constant.
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
        ModelSummary {
            file,
            crate_version: data.crate_version.clone(),
            created: data.created,
            reference_size: data.reference.ids.len(),
            n_features: data.features.len(),
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
        }
    }

    /// The summary as the JSON object `nof1 inspect --json` prints (file
    /// fields are `null` for a model in memory).
    pub fn to_json(&self) -> serde_json::Value {
        let f = self.file.as_ref();
        let p = &self.params;
        let c = &self.components;
        serde_json::json!({
            "format_version": f.map(|f| f.format_version),
            "crate_version": self.crate_version,
            "created": self.created,
            "checksum_crc32": f.map(|f| format!("{:08x}", f.checksum_crc32)),
            "reference_size": self.reference_size,
            "features": self.n_features,
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
        writeln!(
            out,
            "features         {} ({} dropped as constant{})",
            self.n_features,
            self.dropped_features.len(),
            if self.dropped_features.is_empty() {
                String::new()
            } else {
                format!(": {}", preview_names(&self.dropped_features))
            }
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
        if self.index_kind == IndexKind::Hnsw {
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
}
