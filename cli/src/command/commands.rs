//! The subcommands: turn typed arguments into library calls.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use nof1::model::{IndexChoice, ModelSummary};
use nof1::output::{AssessmentWriter, OutputFormat};
use nof1::table::{MatchReport, TableOptions};
use nof1::{Assessment, ComponentRule, Model, Params, Verdict, VerdictCounts};

use super::args::*;
use super::input;
use super::progress::Bars;

/// `println!` that returns write errors (a closed pipe ends the command
/// quietly, see `main`) instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)?
    }};
}

pub fn dispatch(cli: Cli) -> Result<ExitCode> {
    let quiet = cli.quiet;
    let threads = cli.threads.unwrap_or(0);
    match cli.command {
        Command::Fit(a) => fit(a, quiet),
        Command::Assess(a) => assess(a, quiet),
        Command::Check(a) => check(a, quiet),
        Command::Inspect(a) => inspect(a),
        Command::Audit(a) => audit(a, quiet),
        Command::Demo(a) => demo(a, quiet),
        Command::Eval(a) => eval(a),
        Command::Bench(a) => bench(a, threads),
    }
}

fn note(quiet: bool, msg: impl std::fmt::Display) {
    if !quiet {
        eprintln!("nof1: {msg}");
    }
}

fn warn(msg: impl std::fmt::Display) {
    eprintln!("nof1: warning: {msg}");
}

fn table_options(t: &TableArgs, strict: bool) -> Result<TableOptions> {
    let delimiter = match t.delimiter.as_deref() {
        None => None,
        Some("tab") | Some("\\t") | Some("\t") => Some(b'\t'),
        Some(s) if s.len() == 1 && s.is_ascii() => Some(s.as_bytes()[0]),
        Some(s) => bail!("--delimiter must be one ASCII character or `tab`, got {s:?}"),
    };
    Ok(TableOptions {
        delimiter,
        id_col: t.id_col.clone(),
        group_col: t.group_col.clone(),
        exclude: t.exclude.clone(),
        strict,
    })
}

fn fit(a: FitArgs, quiet: bool) -> Result<ExitCode> {
    let components = match (a.components, a.variance) {
        (Some(c), _) => ComponentRule::Fixed(c),
        (None, Some(v)) => ComponentRule::Variance(v),
        (None, None) => Params::default().components,
    };
    let calibrate_by_group = match (&a.calibrate_by, &a.table.group_col) {
        (None, _) => false,
        (Some(c), Some(g)) if c == g => true,
        (Some(c), _) => bail!("--calibrate-by {c} needs the same column as --group-col"),
    };
    let params = Params::default()
        .k(a.k)
        .alpha(a.alpha)
        .warn_alpha(a.warn_alpha)
        .components(components)
        .max_components(a.max_components)
        .index(match a.index {
            IndexArg::Auto => IndexChoice::Auto,
            IndexArg::Exact => IndexChoice::Exact,
            IndexArg::Hnsw => IndexChoice::Hnsw,
            IndexArg::Graph => IndexChoice::Graph,
        })
        .folds(a.folds)
        .calibration_size(a.calibration_size)
        .min_coverage(a.min_coverage)
        .seed(a.seed)
        .calibrate_by_group(calibrate_by_group)
        .value_channel(!a.no_value_channel);
    params.check()?;
    let params = match &a.blocks {
        Some(path) => params
            .blocks(Some(nof1::table::blocks::read_blocks(path).with_context(
                || format!("reading the blocks {}", path.display()),
            )?)),
        None => params,
    };
    check_output_dir(&a.out, &[&a.reference])?;
    super::cleanup::guard(&a.out);
    let format = input::input_format(a.format.as_deref(), &a.reference)?;
    let opts = input::options_for(&table_options(&a.table, true)?, format, &a.table);
    let bars = Bars::new(quiet);
    nof1::Progress::start(&bars, "reading the reference", 0);
    let read = input::read_reference(&a.reference, format, &opts, &a.table)?;
    nof1::Progress::finish(&bars);
    note(
        quiet,
        format!(
            "read {} reference rows × {} {} from {}",
            read.table.n_rows(),
            read.table.n_features(),
            if read.variants.is_some() {
                "variants"
            } else {
                "features"
            },
            a.reference.display()
        ),
    );
    let reference = input::attach_labels(read.table, &a.table, calibrate_by_group, quiet)?;
    let mut model = params
        .fit_with_progress(&reference, &bars)
        .with_context(|| format!("fitting on {}", a.reference.display()))?;
    drop(reference);
    if let Some((names, variants)) = &read.variants {
        model.set_variants(names, variants)?;
    }
    for w in &model.data().warnings {
        warn(w);
    }
    nof1::Progress::start(&bars, "writing the model", 0);
    model
        .save(&a.out)
        .with_context(|| format!("writing the model {}", a.out.display()))?;
    nof1::Progress::finish(&bars);
    let d = model.data();
    note(
        quiet,
        format!(
            "wrote {}: {} members, {} features, {} components ({:.1}% variance, {}), {} index, calibration: {}",
            a.out.display(),
            model.reference().len(),
            model.features().len(),
            model.n_components(),
            d.components.explained * 100.0,
            d.components.rule,
            d.index_kind,
            d.calibration.method
        ),
    );
    Ok(ExitCode::SUCCESS)
}

/// Checks, before any work, that `path` can be written: its directory exists
/// and accepts a new file (probed with a file created and removed at once),
/// and it is not one of the `inputs`.
fn check_output_dir(path: &Path, inputs: &[&Path]) -> Result<()> {
    if path == Path::new("-") {
        return Ok(());
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.exists() {
        bail!(
            "{}: the output directory {} does not exist",
            path.display(),
            dir.display()
        );
    }
    if !dir.is_dir() {
        bail!("{}: {} is not a directory", path.display(), dir.display());
    }
    if path.is_dir() {
        bail!("{}: is a directory, not a file", path.display());
    }
    if std::fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        // A device or FIFO (e.g. /dev/null): written in place, nothing to probe.
        return Ok(());
    }
    if let Ok(out) = path.canonicalize() {
        for input in inputs {
            if input.canonicalize().is_ok_and(|i| i == out) {
                bail!(
                    "{}: the output would overwrite the input {}",
                    path.display(),
                    input.display()
                );
            }
        }
    }
    let probe = dir.join(format!(".nof1-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!(
            "{}: cannot create a file in {}",
            path.display(),
            dir.display()
        ))),
    }
}

/// The model at `path`, never dropped: each command runs once and the
/// process exits after it, so freeing a large model (unmapping hundreds of
/// megabytes) would only delay the exit.
fn load_model(path: &Path, quiet: bool) -> Result<std::mem::ManuallyDrop<Model>> {
    let bars = Bars::new(quiet);
    Model::load_with_progress(path, &bars)
        .map(std::mem::ManuallyDrop::new)
        .with_context(|| format!("loading the model {}", path.display()))
}

/// Opens the patients of `p` in any input format (`format`: a command's own
/// `--format`, else `--input-format`, else the extension); see
/// [`input::open_patients`]. Assess them with [`input::assess_patients`].
fn open_patients(
    model: &Model,
    p: &PatientArgs,
    format: Option<&str>,
    quiet: bool,
) -> Result<input::Patients> {
    let opts = table_options(&p.table, p.strict_input)?;
    input::open_patients(model, p, format, &opts, quiet)
}

fn assess(a: AssessArgs, quiet: bool) -> Result<ExitCode> {
    let inputs = [a.patients.model.as_path(), a.patients.input.as_path()];
    check_output_dir(&a.out, &inputs)?;
    if let Some(r) = &a.report {
        check_output_dir(r, &inputs)?;
        if r == &a.out {
            bail!("{}: --report and --out name the same file", r.display());
        }
        super::cleanup::guard(r);
    }
    super::cleanup::guard(&a.out);
    let model = load_model(&a.patients.model, quiet)?;
    let format = match a.format {
        Some(FormatArg::Csv) => OutputFormat::Csv,
        Some(FormatArg::Tsv) => OutputFormat::Tsv,
        Some(FormatArg::Jsonl) => OutputFormat::Jsonl,
        None => OutputFormat::from_path(&a.out),
    };
    let fdr = check_fdr(a.fdr)?;
    let mut writer = AssessmentWriter::create(&a.out, format, &model)
        .with_context(|| format!("creating the output {}", a.out.display()))?
        .with_q_values(fdr.is_some());
    let keep = a.report.is_some() || fdr.is_some();
    let mut kept: Vec<Assessment> = Vec::new();
    let patients = open_patients(&model, &a.patients, None, quiet)?;
    writer.set_variant_match(patients.report().cloned());
    let mut summary = input::assess_patients(&model, patients, &a.patients.input, quiet, |rows| {
        if fdr.is_none() {
            writer
                .write(&model, rows)
                .with_context(|| format!("writing {}", a.out.display()))?;
        }
        if keep {
            kept.extend_from_slice(rows);
        }
        Ok(())
    })?;
    if let Some(q) = fdr {
        // Benjamini–Hochberg needs the whole batch: rows are written at the end.
        nof1::verdict::apply_fdr(&mut kept, q, model.data().calibration.by_group.is_some());
        summary = Default::default();
        summary.add(&kept);
        writer
            .write(&model, &kept)
            .with_context(|| format!("writing {}", a.out.display()))?;
    }
    if let Some(path) = &a.report {
        write_report(&model, &kept, None, path)?;
    }
    writer
        .finish(&model)
        .with_context(|| format!("writing {}", a.out.display()))?;
    if let Some(path) = &a.report {
        note(quiet, format!("wrote the report {}", path.display()));
    }
    note(
        quiet,
        format!("assessed {} patient(s): {summary}", summary.total()),
    );
    Ok(ExitCode::SUCCESS)
}

fn write_report(
    model: &Model,
    rows: &[Assessment],
    audit: Option<&nof1::report::Audit>,
    path: &Path,
) -> Result<()> {
    let html = nof1::report::render_html(model, rows, audit, "nof1 report");
    nof1::atomic::write_atomic(path, html.as_bytes())
        .with_context(|| format!("writing the report {}", path.display()))
}

/// Checks an `--fdr` level.
fn check_fdr(q: Option<f64>) -> Result<Option<f64>> {
    match q {
        Some(q) if !(q > 0.0 && q < 1.0) => bail!("--fdr must be in (0, 1), got {q}"),
        q => Ok(q),
    }
}

fn check(a: CheckArgs, quiet: bool) -> Result<ExitCode> {
    let model = load_model(&a.patients.model, quiet)?;
    let fdr = check_fdr(a.fdr)?;
    let strict = a.strict;
    // A reader that stops early (`| head`) closes the pipe; the remaining
    // patients are still assessed, because the exit code is the verdict.
    let mut lines = CheckLines {
        out: std::io::BufWriter::new(std::io::stdout().lock()),
        stdout_closed: false,
        failing: 0,
        strict,
    };
    // With `--fdr` the verdicts depend on the whole batch: keep it, adjust, then report.
    let mut kept: Vec<Assessment> = Vec::new();
    let patients = open_patients(&model, &a.patients, a.format.as_deref(), quiet)?;
    let mut summary = input::assess_patients(&model, patients, &a.patients.input, quiet, |rows| {
        if fdr.is_some() {
            kept.extend_from_slice(rows);
            return Ok(());
        }
        lines.write(&model, rows)
    })?;
    if let Some(q) = fdr {
        nof1::verdict::apply_fdr(&mut kept, q, model.data().calibration.by_group.is_some());
        summary = VerdictCounts::default();
        summary.add(&kept);
        lines.write(&model, &kept)?;
    }
    if !lines.stdout_closed {
        closed_pipe(lines.out.flush()).context("writing to standard output")?;
    }
    note(
        quiet,
        format!("checked {} patient(s): {summary}", summary.total()),
    );
    if lines.failing > 0 {
        Ok(ExitCode::from(1))
    } else {
        Ok(ExitCode::SUCCESS)
    }
}

/// `check`'s output: one line per patient who is not `supported`, and the
/// count of those that fail the check.
struct CheckLines<W: Write> {
    out: W,
    stdout_closed: bool,
    failing: usize,
    strict: bool,
}

impl<W: Write> CheckLines<W> {
    fn write(&mut self, model: &Model, rows: &[Assessment]) -> Result<()> {
        for r in rows {
            if r.verdict == Verdict::Supported {
                continue;
            }
            if r.verdict == Verdict::Invisible || (self.strict && r.verdict == Verdict::LowSupport)
            {
                self.failing += 1;
            }
            if self.stdout_closed {
                continue;
            }
            let written = writeln!(
                self.out,
                "{}\t{}\t{}\t{}",
                r.id,
                r.verdict,
                fmt_p(r.p_value),
                nof1::report::explain(model, r)
            );
            self.stdout_closed = closed_pipe(written).context("writing to standard output")?;
        }
        Ok(())
    }
}

/// `Ok(true)` when a write failed only because the reader closed the pipe.
fn closed_pipe(result: std::io::Result<()>) -> std::io::Result<bool> {
    match result {
        Ok(()) => Ok(false),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(true),
        Err(e) => Err(e),
    }
}

fn fmt_p(p: f64) -> String {
    if p.is_nan() {
        "NA".into()
    } else {
        format!("{p:.4}")
    }
}

fn inspect(a: InspectArgs) -> Result<ExitCode> {
    let bytes =
        std::fs::read(&a.model).with_context(|| format!("reading {}", a.model.display()))?;
    let summary = ModelSummary::from_bytes(&bytes, &a.model)?;
    if a.json {
        out!("{}", serde_json::to_string_pretty(&summary.to_json())?);
    } else {
        let mut stdout = std::io::stdout();
        stdout.write_all(summary.to_text().as_bytes())?;
    }
    Ok(ExitCode::SUCCESS)
}

fn audit(a: AuditArgs, quiet: bool) -> Result<ExitCode> {
    if a.patients.table.group_col.is_none() {
        bail!("nof1 audit needs --group-col to name the column of group labels");
    }
    // The directory is created only once every patient is assessed, so an
    // interrupted or failed audit leaves nothing at --out-dir.
    if a.out_dir.exists() {
        let inputs = [a.patients.model.as_path(), a.patients.input.as_path()];
        check_output_dir(&a.out_dir.join(AUDIT_FILES[0]), &inputs)?;
    }
    for name in AUDIT_FILES {
        super::cleanup::guard(&a.out_dir.join(name));
    }
    let model = load_model(&a.patients.model, quiet)?;
    let mut rows: Vec<Assessment> = Vec::new();
    let patients = open_patients(&model, &a.patients, a.format.as_deref(), quiet)?;
    let variant_match = patients.report().cloned();
    input::assess_patients(&model, patients, &a.patients.input, quiet, |r| {
        rows.extend_from_slice(r);
        Ok(())
    })?;
    std::fs::create_dir_all(&a.out_dir)
        .with_context(|| format!("creating {}", a.out_dir.display()))?;
    write_audit(&model, &rows, &a.out_dir, quiet, variant_match)?;
    Ok(ExitCode::SUCCESS)
}

/// The files `audit` and `demo --out-dir` write, in order.
const AUDIT_FILES: [&str; 5] = [
    "audit.json",
    "audit.tsv",
    "channels.tsv",
    "report.html",
    "scatter.svg",
];

fn write_audit(
    model: &Model,
    rows: &[Assessment],
    dir: &Path,
    quiet: bool,
    variant_match: Option<MatchReport>,
) -> Result<nof1::report::Audit> {
    let mut audit = nof1::report::audit(model, rows);
    audit.variant_match = variant_match;
    let write = |name: &str, text: &str| -> Result<PathBuf> {
        let path = dir.join(name);
        nof1::atomic::write_atomic(&path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    };
    write(AUDIT_FILES[0], &audit.to_json())?;
    write(AUDIT_FILES[1], &audit.to_tsv())?;
    write(AUDIT_FILES[2], &audit.channels_tsv())?;
    let html = nof1::report::render_html(model, rows, Some(&audit), "nof1 audit");
    write(AUDIT_FILES[3], &html)?;
    write(AUDIT_FILES[4], &nof1::report::scatter_svg(model, rows))?;
    for line in audit.channel_lines() {
        note(quiet, line);
    }
    note(
        quiet,
        format!(
            "wrote audit.json, audit.tsv, channels.tsv, report.html and scatter.svg to {}",
            dir.display()
        ),
    );
    for w in audit.warnings() {
        warn(w);
    }
    Ok(audit)
}

fn demo(a: DemoArgs, quiet: bool) -> Result<ExitCode> {
    let params = Params::default().seed(a.seed);
    out!(
        "nof1 demo: 1000 Genomes, Seldin 127-SNP ancestry panel (bundled). Reference = GWAS-like mix:\n{:.0}% of EUR plus {} samples of each other super-population. Everyone else is assessed.\n",
        crate::demo::DEMO_EUR_FRACTION * 100.0,
        crate::demo::DEMO_PER_MINOR
    );
    let run = crate::demo::run(&params)?;
    let m = &run.model;
    out!(
        "model: {} reference members, {} SNPs, {} components ({}), k = {}, alpha = {}, warn_alpha = {}\n",
        m.reference().len(),
        m.features().len(),
        m.n_components(),
        m.data().components.rule,
        m.params().k,
        m.params().alpha,
        m.params().warn_alpha
    );
    out!(
        "{:<6} {:>7} {:>6} {:>10} {:>12} {:>9} {:>9}",
        "group",
        "in ref",
        "n",
        "invisible",
        "low_support",
        "flagged",
        "median p"
    );
    for r in &run.rows {
        out!(
            "{:<6} {:>7} {:>6} {:>9.1}% {:>11.1}% {:>8.1}% {:>9.3}",
            r.group,
            r.in_reference,
            r.n,
            100.0 * r.invisible,
            100.0 * r.low_support,
            100.0 * (r.invisible + r.low_support),
            r.median_p
        );
    }
    out!(
        "\nEUR rows are exchangeable with the reference: about alpha = {} of them may be called invisible by chance.",
        m.params().alpha
    );
    if let Some(dir) = &a.out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for name in AUDIT_FILES {
            super::cleanup::guard(&dir.join(name));
        }
        write_audit(m, &run.assessments, dir, quiet, None)?;
    }
    if a.loso {
        out!(
            "\nleave-one-super-population-out (fit on 70% of the other four, assess the rest + the left-out one):"
        );
        out!(
            "{:<14} {:>6} {:>10} {:>9} {:>8}",
            "left out",
            "AUROC",
            "invisible",
            "flagged",
            "false inv."
        );
        let panel = crate::demo::panel()?;
        for q in crate::eval::loso(&panel, &params, a.seed)? {
            out!(
                "{:<14} {:>6.3} {:>9.1}% {:>8.1}% {:>8.1}%",
                q.name,
                q.auroc,
                100.0 * q.detected,
                100.0 * q.flagged,
                100.0 * q.false_invisible
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn eval(a: EvalArgs) -> Result<ExitCode> {
    let params = Params::default().value_channel(!a.no_value_channel);
    match a.what {
        EvalWhat::Omics { seed, n } => {
            let cohort = crate::omics::generate(&crate::omics::OmicsParams {
                n,
                seed,
                ..crate::omics::OmicsParams::default()
            })?;
            out!(
                "{:<14} {:>6} {:>7} {:>9} {:>8} {:>12} {:>7}",
                "fit",
                "AUROC",
                "recall",
                "false_inv",
                "flagged",
                "block_named",
                "fit_s"
            );
            for with_blocks in [false, true] {
                let q = crate::omics::evaluate(&cohort, &params, with_blocks)?;
                out!(
                    "{:<14} {:>6.3} {:>7.3} {:>9.3} {:>8} {:>12.3} {:>7.1}",
                    if with_blocks { "--blocks" } else { "no blocks" },
                    q.auroc,
                    q.recall,
                    q.false_invisible,
                    q.n_flagged,
                    q.block_named,
                    q.fit_seconds
                );
            }
        }
        EvalWhat::Adbench {
            dir,
            seeds,
            missing,
        } => {
            if !(0.0..1.0).contains(&missing) {
                bail!("--missing must be in [0, 1), got {missing}");
            }
            let files = crate::eval::csv_files(&dir)
                .with_context(|| format!("listing {}", dir.display()))?;
            if files.is_empty() {
                bail!("{}: no .csv tables", dir.display());
            }
            out!(
                "{:<16} {:>6} {:>4} {:>7} {:>7} {:>7} {:>8} {:>8}",
                "table",
                "n_ref",
                "c",
                "AUROC",
                "knn",
                "resid",
                "false_inv",
                "detected"
            );
            let mut all = Vec::new();
            for f in &files {
                let mut per = Vec::new();
                for &s in &seeds {
                    per.push(crate::eval::adbench_table_masked(f, &params, s, missing)?);
                }
                let m = |g: &dyn Fn(&crate::eval::RunQuality) -> f64| {
                    per.iter().map(g).sum::<f64>() / per.len() as f64
                };
                out!(
                    "{:<16} {:>6} {:>4} {:>7.3} {:>7.3} {:>7.3} {:>8.3} {:>8.3}",
                    per[0].name,
                    per[0].n_reference,
                    per[0].n_components,
                    m(&|q| q.auroc),
                    m(&|q| q.auroc_knn),
                    m(&|q| q.auroc_residual),
                    m(&|q| q.false_invisible),
                    m(&|q| q.detected)
                );
                all.extend(per);
            }
            let m = |g: &dyn Fn(&crate::eval::RunQuality) -> f64| {
                all.iter().map(g).sum::<f64>() / all.len() as f64
            };
            let worst = all.iter().map(|q| q.false_invisible).fold(0.0, f64::max);
            out!(
                "{:<16} {:>6} {:>4} {:>7.3} {:>7.3} {:>7.3} {:>8.3} {:>8.3}",
                "MEAN",
                "",
                "",
                m(&|q| q.auroc),
                m(&|q| q.auroc_knn),
                m(&|q| q.auroc_residual),
                m(&|q| q.false_invisible),
                m(&|q| q.detected)
            );
            let alpha = params.alpha;
            out!("worst false-invisible rate over tables and seeds: {worst:.3} (alpha {alpha})");
            // What exact validity would give on held-out sets of these sizes.
            let above = all.iter().filter(|q| q.false_invisible > 0.10).count();
            let tails: Vec<f64> = all
                .iter()
                .map(|q| {
                    crate::eval::binomial_rate_above(q.n_normal - q.n_insufficient, alpha, 0.10)
                })
                .collect();
            let expected: f64 = tails.iter().sum();
            let p_none: f64 = tails.iter().map(|t| 1.0 - t).product();
            out!(
                "runs above 0.10: {above} of {}; if every p-value were exactly valid: {expected:.2} expected, P(none) = {p_none:.2} (binomial, same held-out sizes)",
                all.len()
            );
            // Per table, the held-out normal rows of every seed together
            // against what exactly valid p-values would give.
            out!(
                "false-invisible per table (held-out normal rows of all seeds with a verdict) against the central 95% binomial range at alpha:"
            );
            let (mut below, mut over) = (Vec::new(), Vec::new());
            for runs in all.chunk_by(|a, b| a.name == b.name) {
                let normal: usize = runs.iter().map(|q| q.n_normal).sum();
                let none: usize = runs.iter().map(|q| q.n_insufficient).sum();
                let inv: usize = runs.iter().map(|q| q.n_invisible).sum();
                let n = normal - none;
                let rate = inv as f64 / n.max(1) as f64;
                let (lo, hi) = crate::eval::binomial_range(n, alpha, 0.95);
                let side = if rate < lo {
                    below.push(runs[0].name.clone());
                    " below"
                } else if rate > hi {
                    over.push(runs[0].name.clone());
                    " ABOVE"
                } else {
                    ""
                };
                out!(
                    "  {:<16} normal {:>5} insufficient_data {:>4} invisible {:>4} of {:>5} rate {:.3} range {:.3}-{:.3}{side}",
                    runs[0].name,
                    normal,
                    none,
                    inv,
                    n,
                    rate,
                    lo,
                    hi
                );
            }
            let n_tables = all.chunk_by(|a, b| a.name == b.name).count();
            let list = |v: &[String]| {
                if v.is_empty() {
                    "none".to_string()
                } else {
                    v.join(" ")
                }
            };
            out!(
                "tables outside the range: {} of {n_tables} (below: {}; above: {}); about {:.1} expected if every p-value were exactly valid and independent",
                below.len() + over.len(),
                list(&below),
                list(&over),
                0.05 * n_tables as f64
            );
        }
        EvalWhat::Genomes { seeds } => {
            let panel = crate::demo::panel()?;
            out!("leave-one-super-population-out (mean over seeds {seeds:?})");
            out!(
                "{:<14} {:>6} {:>7} {:>7} {:>9} {:>9}",
                "left out",
                "AUROC",
                "knn",
                "resid",
                "false_inv",
                "flagged"
            );
            let mut per_seed = Vec::new();
            for &s in &seeds {
                per_seed.push(crate::eval::loso(&panel, &params, s)?);
            }
            let n_groups = per_seed[0].len();
            let mut mean_auc = 0.0;
            let mut mean_fi = 0.0;
            for gi in 0..n_groups {
                let m = |g: &dyn Fn(&crate::eval::RunQuality) -> f64| {
                    per_seed.iter().map(|v| g(&v[gi])).sum::<f64>() / per_seed.len() as f64
                };
                mean_auc += m(&|q| q.auroc) / n_groups as f64;
                mean_fi += m(&|q| q.false_invisible) / n_groups as f64;
                out!(
                    "{:<14} {:>6.3} {:>7.3} {:>7.3} {:>9.3} {:>9.3}",
                    per_seed[0][gi].name,
                    m(&|q| q.auroc),
                    m(&|q| q.auroc_knn),
                    m(&|q| q.auroc_residual),
                    m(&|q| q.false_invisible),
                    m(&|q| q.flagged)
                );
            }
            out!(
                "{:<14} {:>6.3} {:>7} {:>7} {:>9.3}",
                "MEAN",
                mean_auc,
                "",
                "",
                mean_fi
            );
            out!("\nGWAS-mix demo (flagged = invisible or low_support)");
            for &s in &seeds {
                let run = crate::demo::run(&params.clone().seed(s))?;
                let (mut flagged, mut n_other) = (0.0, 0usize);
                let mut eur_inv = f64::NAN;
                for r in &run.rows {
                    if r.group == "EUR" {
                        eur_inv = r.invisible;
                    } else {
                        flagged += (r.invisible + r.low_support) * r.n as f64;
                        n_other += r.n;
                    }
                }
                out!(
                    "seed {s}: non-European flagged {:.1}% of {n_other}; European invisible {:.1}%",
                    100.0 * flagged / n_other.max(1) as f64,
                    100.0 * eur_inv
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn bench(a: BenchArgs, threads: usize) -> Result<ExitCode> {
    match a.what {
        BenchWhat::Synth {
            profile,
            n,
            features,
            patients,
            rank,
            clusters,
            seed,
            out,
        } => {
            use crate::synth::SynthProfile;
            let base = match profile {
                SynthProfileArg::LowRank => SynthProfile::LowRank,
                SynthProfileArg::Biobank => SynthProfile::Biobank,
                SynthProfileArg::Omics => SynthProfile::Omics,
            }
            .params();
            let params = crate::synth::SynthParams {
                n: n.unwrap_or(base.n),
                features: features.unwrap_or(base.features),
                patients: patients.unwrap_or(base.patients),
                rank: rank.unwrap_or(base.rank),
                clusters: clusters.unwrap_or(base.clusters),
                seed,
                ..base
            };
            std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
            let summary = crate::synth::write_synth(&params, &out)
                .with_context(|| format!("writing the synthetic cohort to {}", out.display()))?;
            eprintln!("nof1: {summary}");
        }
        BenchWhat::Omics { n, seed, out } => {
            let params = crate::omics::OmicsParams {
                n,
                seed,
                ..crate::omics::OmicsParams::default()
            };
            let files = crate::omics::write_omics(&params, &out)
                .with_context(|| format!("writing the omics cohort to {}", out.display()))?;
            eprintln!(
                "nof1: wrote {}, {} and {}",
                files.reference.display(),
                files.patients.display(),
                files.blocks.display()
            );
        }
        BenchWhat::Run {
            reference,
            patients,
            index,
            no_compare,
            seed,
        } => {
            let params = Params::default().seed(seed).index(match index {
                IndexArg::Auto => IndexChoice::Auto,
                IndexArg::Exact => IndexChoice::Exact,
                IndexArg::Hnsw => IndexChoice::Hnsw,
                IndexArg::Graph => IndexChoice::Graph,
            });
            let options = crate::bench::BenchOptions {
                threads,
                compare_indexes: !no_compare,
                ..crate::bench::BenchOptions::default()
            };
            let report = crate::bench::run_bench_with(&reference, &patients, &params, &options)
                .context("running the benchmark")?;
            out!("{report}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
