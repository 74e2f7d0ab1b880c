//! Command-line arguments: only what was typed (validated by the library).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Is this patient represented in the reference cohort, or mathematically invisible to it?
#[derive(Debug, Parser)]
#[command(name = "nof1", version, about, long_about = None)]
pub struct Cli {
    /// Silence progress bars and the summary on stderr (errors are still printed).
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Worker threads (default: all cores).
    #[arg(long, global = true)]
    pub threads: Option<usize>,
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fit a model on a reference cohort.
    Fit(FitArgs),
    /// Assess patients against a model; one output row per input row.
    Assess(AssessArgs),
    /// Pipeline check: one line per non-supported patient; exit 1 if any is invisible.
    Check(CheckArgs),
    /// Show what a model file holds.
    Inspect(InspectArgs),
    /// Per-group audit of a labelled patient set: audit.json, audit.tsv, report.html.
    Audit(AuditArgs),
    /// The 1000 Genomes demonstration on the bundled panel (no arguments needed).
    Demo(DemoArgs),
    /// Reproducible evaluations on the development data.
    Eval(EvalArgs),
    /// Benchmarks: synthetic cohorts and timings.
    Bench(BenchArgs),
}

/// How to read a table.
#[derive(Debug, Args, Clone)]
pub struct TableArgs {
    /// Id column (default: the first column).
    #[arg(long)]
    pub id_col: Option<String>,
    /// Group column: a label kept for audits and Mondrian calibration, never a feature.
    #[arg(long)]
    pub group_col: Option<String>,
    /// Columns to ignore (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub exclude: Vec<String>,
    /// Field delimiter: a single character, or `tab` (default: by format or extension, `.tsv` → tab).
    #[arg(long)]
    pub delimiter: Option<String>,
    /// Sample labels: a CSV/TSV whose first column is the sample id; --group-col
    /// and --calibrate-by then name its columns (works with every input format).
    #[arg(long)]
    pub labels: Option<PathBuf>,
    /// VCF/BCF: read the DS (dosage) FORMAT field instead of GT where a record has it.
    #[arg(long)]
    pub use_ds: bool,
}

/// Index choice on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum IndexArg {
    /// Exact, unless the reference is large and one exact search, measured
    /// at fit, looks at too many members: then the graph.
    Auto,
    /// Always exact search.
    Exact,
    /// Always an HNSW graph built by hnsw_rs (verdicts still exact:
    /// non-supported patients are re-checked).
    Hnsw,
    /// Always nof1's own graph, built in parallel; calibration and patients
    /// scored by the same graph search (recall measured at fit).
    Graph,
}

/// `nof1 fit`.
#[derive(Debug, Args)]
pub struct FitArgs {
    /// Reference cohort: CSV/TSV, VCF (.vcf, .vcf.gz), BCF, PLINK .bed, or a
    /// whitespace PC table (.eigenvec, .pcs, .txt); gzip allowed; `-` = stdin.
    #[arg(long)]
    pub reference: PathBuf,
    /// Input format, overriding the extension: csv, tsv, whitespace, vcf, bcf, plink.
    #[arg(long, visible_alias = "input-format")]
    pub format: Option<String>,
    /// Model file to write.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub table: TableArgs,
    /// Keep calibration scores per group of this column (Mondrian calibration); must equal --group-col.
    #[arg(long)]
    pub calibrate_by: Option<String>,
    /// Nearest neighbours.
    #[arg(long, default_value_t = nof1::model::params::DEFAULT_K)]
    pub k: usize,
    /// Level at or below which a patient is invisible.
    #[arg(long, default_value_t = nof1::model::params::DEFAULT_ALPHA)]
    pub alpha: f64,
    /// Level at or below which a patient is low_support.
    #[arg(long, default_value_t = nof1::model::params::DEFAULT_WARN_ALPHA)]
    pub warn_alpha: f64,
    /// Keep components up to this fraction of explained variance (overrides the default rule).
    #[arg(long, conflicts_with = "components")]
    pub variance: Option<f64>,
    /// Keep exactly this many components (overrides the default rule).
    #[arg(long)]
    pub components: Option<usize>,
    /// Upper bound on the number of components.
    #[arg(long, default_value_t = nof1::model::params::DEFAULT_MAX_COMPONENTS)]
    pub max_components: usize,
    /// Search structure.
    #[arg(long, value_enum, default_value_t = IndexArg::Auto)]
    pub index: IndexArg,
    /// Cross-fitting folds.
    #[arg(long, default_value_t = nof1::model::params::DEFAULT_FOLDS)]
    pub folds: usize,
    /// Most reference members scored for calibration.
    #[arg(long, default_value_t = nof1::model::params::DEFAULT_CALIBRATION_SIZE)]
    pub calibration_size: usize,
    /// Coverage below which a patient is insufficient_data.
    #[arg(long, default_value_t = nof1::model::params::DEFAULT_MIN_COVERAGE)]
    pub min_coverage: f64,
    /// Seed of every random choice.
    #[arg(long, default_value_t = nof1::model::params::DEFAULT_SEED)]
    pub seed: u64,
    /// Feature blocks (multi-omic layers): a CSV/TSV with the header
    /// `feature,block`. Blocks are weighted (MFA) and each gets a calibrated
    /// residual channel; unlisted features form the block `other`.
    #[arg(long)]
    pub blocks: Option<PathBuf>,
    /// No value channel: constant columns are dropped and values are not
    /// scored against what the reference showed.
    #[arg(long)]
    pub no_value_channel: bool,
}

/// Patient input shared by assess, check and audit.
#[derive(Debug, Args)]
pub struct PatientArgs {
    /// Model file.
    #[arg(long)]
    pub model: PathBuf,
    /// Patients: CSV/TSV, VCF, BCF, PLINK .bed or a whitespace PC table (gzip allowed; `-` = stdin).
    #[arg(long)]
    pub input: PathBuf,
    /// Input format, overriding the extension: csv, tsv, whitespace, vcf,
    /// bcf, plink (on assess, `--format` is the output format).
    #[arg(long)]
    pub input_format: Option<String>,
    #[command(flatten)]
    pub table: TableArgs,
    /// Genotypes: read model variants absent from the file as 0 ALT copies
    /// (for VCFs that leave out hom-ref sites) instead of missing.
    #[arg(long)]
    pub missing_as_ref: bool,
    /// Genotypes: make strand-ambiguous A/T and C/G sites missing instead of reading them as written.
    #[arg(long)]
    pub drop_ambiguous: bool,
    /// Turn recoverable input defects (text in a numeric cell, ragged rows) into errors.
    #[arg(long)]
    pub strict_input: bool,
}

/// `nof1 assess`.
#[derive(Debug, Args)]
pub struct AssessArgs {
    #[command(flatten)]
    pub patients: PatientArgs,
    /// Output: `.csv`, `.tsv` or `.jsonl` (`-` = stdout, CSV unless --format).
    #[arg(long, default_value = "-")]
    pub out: PathBuf,
    /// Output format (default: by extension).
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Also write a self-contained HTML report.
    #[arg(long)]
    pub report: Option<PathBuf>,
    /// Control the false discovery rate of the batch at Q: add a `q_value`
    /// column (Benjamini–Hochberg over the batch's p-values, per group for a
    /// Mondrian model) and call `invisible` the patients with q_value <= Q.
    #[arg(long, value_name = "Q")]
    pub fdr: Option<f64>,
}

/// Output format on the command line.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// Comma-separated.
    Csv,
    /// Tab-separated.
    Tsv,
    /// JSON Lines.
    Jsonl,
}

/// `nof1 check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub patients: PatientArgs,
    /// Input format, overriding the extension (same as --input-format).
    #[arg(long, conflicts_with = "input_format")]
    pub format: Option<String>,
    /// Also fail (exit 1) on low_support patients.
    #[arg(long)]
    pub strict: bool,
    /// Control the false discovery rate of the batch at Q (as `assess --fdr`):
    /// exit 1 when a patient has q_value <= Q.
    #[arg(long, value_name = "Q")]
    pub fdr: Option<f64>,
}

/// `nof1 inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Model file.
    #[arg(long)]
    pub model: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `nof1 audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    #[command(flatten)]
    pub patients: PatientArgs,
    /// Input format, overriding the extension (same as --input-format).
    #[arg(long, conflicts_with = "input_format")]
    pub format: Option<String>,
    /// Directory for audit.json, audit.tsv and report.html (created if missing).
    #[arg(long, default_value = "nof1-audit")]
    pub out_dir: PathBuf,
}

/// `nof1 demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Seed of the reference/held-out split and of the fit.
    #[arg(long, default_value_t = nof1::model::params::DEFAULT_SEED)]
    pub seed: u64,
    /// Also write the audit (audit.json, audit.tsv, report.html) to this directory.
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Also run the leave-one-super-population-out view.
    #[arg(long)]
    pub loso: bool,
}

/// `nof1 eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Fit without the value channel (the figures before it existed).
    #[arg(long, global = true)]
    pub no_value_channel: bool,
    #[command(subcommand)]
    pub what: EvalWhat,
}

/// Evaluations.
#[derive(Debug, Subcommand)]
pub enum EvalWhat {
    /// ADBench-style tables (`id,label,f0,...`): fit on 70% of label-0 rows, assess the rest + anomalies.
    Adbench {
        /// Directory of CSV tables.
        #[arg(default_value = "../shared/data/adbench-dev")]
        dir: PathBuf,
        /// Seeds (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
        seeds: Vec<u64>,
        /// Hide each feature of each assessed row with this probability
        /// (missing completely at random, seeded): measures the
        /// false-invisible rate of patients with missing features.
        #[arg(long, default_value_t = 0.0)]
        missing: f64,
    },
    /// 1000 Genomes panel: leave-one-super-population-out and the GWAS-mix demo.
    Genomes {
        /// Seeds (comma-separated).
        #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
        seeds: Vec<u64>,
    },
    /// The multi-omic cohort of `bench omics`: AUROC, recall and the share
    /// of flagged patients whose reason names the metabolome, with and
    /// without blocks.
    Omics {
        /// Seed of the cohort.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Reference members.
        #[arg(long, default_value_t = 3_000)]
        n: usize,
    },
}

/// `nof1 bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

/// Shapes of `bench synth` cohorts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SynthProfileArg {
    /// 8 latent dimensions, 12 clusters.
    LowRank,
    /// 40 Pareto-unequal clusters near a 24-dimensional subspace, with noise.
    Biobank,
    /// Wide: 3,000 members × 2,500 features, 24 latent dimensions.
    Omics,
}

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchWhat {
    /// Write a reproducible clustered synthetic cohort (reference.csv, patients.csv).
    Synth {
        /// Cohort shape: low-rank (8 latent dimensions, the easiest), biobank
        /// (40 Pareto-unequal clusters near a 24-dimensional subspace, noise)
        /// or omics (3,000 × 2,500).
        #[arg(long, value_enum, default_value_t = SynthProfileArg::LowRank)]
        profile: SynthProfileArg,
        /// Reference members [default: 200000; omics 3000].
        #[arg(long)]
        n: Option<usize>,
        /// Features [default: 96; omics 2500].
        #[arg(long)]
        features: Option<usize>,
        /// Patients [default: 20000; omics 300].
        #[arg(long)]
        patients: Option<usize>,
        /// Dimension of the latent subspace [default: 8; biobank and omics 24].
        #[arg(long)]
        rank: Option<usize>,
        /// Number of clusters [default: 12; biobank 40, omics 8].
        #[arg(long)]
        clusters: Option<usize>,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Write the multi-omic cohort (reference.csv, patients.csv with `truth`,
    /// blocks.csv): 300 genotype, 2,000 transcript, 150 protein and 40
    /// metabolite columns; `out` patients leave the metabolite manifold only.
    Omics {
        /// Reference members.
        #[arg(long, default_value_t = 3_000)]
        n: usize,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Time read, fit, save, load and assess (wall time, peak RSS, patients/s),
    /// and compare the HNSW graph with exact search (recall@k, differing verdicts).
    Run {
        /// Reference cohort (e.g. DIR/reference.csv from `bench synth`).
        #[arg(long)]
        reference: PathBuf,
        /// Patients (e.g. DIR/patients.csv; a `truth` column is used, never a feature).
        #[arg(long)]
        patients: PathBuf,
        /// Search structure of the fitted model.
        #[arg(long, value_enum, default_value_t = IndexArg::Auto)]
        index: IndexArg,
        /// Skip building the other index kind for the recall and verdict comparison.
        #[arg(long)]
        no_compare: bool,
        /// Seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}
