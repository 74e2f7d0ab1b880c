//! The subcommands: turn typed arguments into library calls.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use nof1::model::IndexChoice;
use nof1::output::{AssessmentWriter, OutputFormat};
use nof1::table::{Role, TableOptions, TableReader, read_table};
use nof1::{Assessment, ComponentRule, Model, Params, Verdict};

use super::args::*;
use super::progress::Bars;

/// Rows read and assessed per batch when streaming patients.
/// `println!` that returns write errors (a closed pipe ends the command
/// quietly, see `main`) instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout(), $($arg)*)?
    }};
}

const CHUNK_ROWS: usize = 4_096;

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
        (None, None) => Params::default().get_components(),
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
    let opts = table_options(&a.table, true)?;
    let bars = Bars::new(quiet);
    nof1::Progress::start(&bars, "reading the reference", 0);
    let reference = read_table(&a.reference, &opts, Role::Reference)
        .with_context(|| format!("reading the reference {}", a.reference.display()))?;
    nof1::Progress::finish(&bars);
    note(
        quiet,
        format!(
            "read {} reference rows × {} features from {}",
            reference.n_rows(),
            reference.n_features(),
            a.reference.display()
        ),
    );
    let model = params
        .fit_with_progress(&reference, &bars)
        .with_context(|| format!("fitting on {}", a.reference.display()))?;
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

fn load_model(path: &Path, quiet: bool) -> Result<Model> {
    let bars = Bars::new(quiet);
    Model::load_with_progress(path, &bars)
        .with_context(|| format!("loading the model {}", path.display()))
}

/// Counts per verdict.
#[derive(Default)]
struct Summary {
    counts: [usize; 4],
}

impl Summary {
    fn add(&mut self, rows: &[Assessment]) {
        for a in rows {
            let i = Verdict::ALL
                .iter()
                .position(|v| *v == a.verdict)
                .unwrap_or(0);
            self.counts[i] += 1;
        }
    }
    fn total(&self) -> usize {
        self.counts.iter().sum()
    }
    fn line(&self) -> String {
        let n = self.total().max(1) as f64;
        Verdict::ALL
            .iter()
            .zip(self.counts)
            .map(|(v, c)| format!("{v} {c} ({:.1}%)", 100.0 * c as f64 / n))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Streams the patients through the model; calls `sink` on each assessed batch.
fn stream_patients(
    model: &Model,
    p: &PatientArgs,
    quiet: bool,
    mut sink: impl FnMut(&[Assessment]) -> Result<()>,
) -> Result<Summary> {
    let opts = table_options(&p.table, p.strict_input)?;
    let mut reader = TableReader::open(&p.input, &opts, Role::Patients)
        .with_context(|| format!("reading the patients {}", p.input.display()))?;
    // Columns the model does not know are reported once, then neither parsed
    // nor checked (text in an unused column is not a defect of the patient).
    let all_columns = reader.feature_names();
    let map = model.feature_map(&all_columns);
    if map.n_matched() == 0 {
        bail!(
            "{}:1: none of the model's {} features ({}) is a column of the patients file; is it the right file and delimiter?",
            p.input.display(),
            model.features().len(),
            preview(model.features())
        );
    }
    reader.retain_features(model.features());
    let map = nof1::table::FeatureMap {
        unknown: map.unknown,
        ..model.feature_map(&reader.feature_names())
    };
    if !map.unknown.is_empty() {
        warn(format!(
            "{}: ignoring {} column(s) the model does not know: {}",
            p.input.display(),
            map.unknown.len(),
            preview(&map.unknown)
        ));
    }
    if !map.absent.is_empty() {
        warn(format!(
            "{}: {} of the model's {} features are absent and count as missing: {}",
            p.input.display(),
            map.absent.len(),
            model.features().len(),
            preview(&map.absent)
        ));
    }
    let bars = Bars::new(quiet);
    nof1::Progress::start(&bars, "assessing", 0);
    let mut summary = Summary::default();
    let mut noted = 0usize;
    // The next batch is read and parsed on its own thread while this one is
    // assessed and written. Batches arrive in file order.
    std::thread::scope(|scope| -> Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        scope.spawn(move || {
            loop {
                let next = reader.next_chunk(CHUNK_ROWS);
                let done = !matches!(next, Ok(Some(_)));
                // A closed channel means the consumer stopped on an error.
                if tx.send(next).is_err() || done {
                    break;
                }
            }
        });
        for next in rx {
            let Some(chunk) =
                next.with_context(|| format!("reading the patients {}", p.input.display()))?
            else {
                break;
            };
            noted += chunk.notes.iter().filter(|n| !n.is_empty()).count();
            let rows = model.assess_mapped(&chunk, &map);
            summary.add(&rows);
            sink(&rows)?;
            nof1::Progress::advance(&bars, rows.len() as u64);
        }
        Ok(())
    })?;
    nof1::Progress::finish(&bars);
    if noted > 0 {
        warn(format!(
            "{}: {noted} row(s) had recoverable defects, recorded in the note column (--strict-input makes them errors)",
            p.input.display()
        ));
    }
    Ok(summary)
}

fn preview(names: &[String]) -> String {
    let mut s = names.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 5 {
        s.push_str(&format!(", ... ({} more)", names.len() - 5));
    }
    s
}

fn assess(a: AssessArgs, quiet: bool) -> Result<ExitCode> {
    let inputs = [a.patients.model.as_path(), a.patients.input.as_path()];
    check_output_dir(&a.out, &inputs)?;
    if let Some(r) = &a.report {
        check_output_dir(r, &inputs)?;
        if r == &a.out {
            bail!("{}: --report and --out name the same file", r.display());
        }
    }
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
    let mut summary = stream_patients(&model, &a.patients, quiet, |rows| {
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
        format!(
            "assessed {} patient(s): {}",
            summary.total(),
            summary.line()
        ),
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
    nof1::model::format::write_atomic(path, html.as_bytes())
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
    let mut failing = 0usize;
    let strict = a.strict;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut kept: Vec<Assessment> = Vec::new();
    let mut summary = stream_patients(&model, &a.patients, quiet, |rows| {
        if fdr.is_some() {
            kept.extend_from_slice(rows);
            return Ok(());
        }
        for r in rows {
            if r.verdict == Verdict::Supported {
                continue;
            }
            if r.verdict == Verdict::Invisible || (strict && r.verdict == Verdict::LowSupport) {
                failing += 1;
            }
            let explanation = nof1::report::explain(&model, r);
            writeln!(
                out,
                "{}\t{}\t{}\t{}",
                r.id,
                r.verdict,
                fmt_p(r.p_value),
                explanation
            )
            .context("writing to standard output")?;
        }
        Ok(())
    })?;
    if let Some(q) = fdr {
        nof1::verdict::apply_fdr(&mut kept, q, model.data().calibration.by_group.is_some());
        summary = Default::default();
        summary.add(&kept);
        for r in &kept {
            if r.verdict == Verdict::Supported {
                continue;
            }
            if r.verdict == Verdict::Invisible || (strict && r.verdict == Verdict::LowSupport) {
                failing += 1;
            }
            writeln!(
                out,
                "{}\t{}\t{}\t{}",
                r.id,
                r.verdict,
                fmt_p(r.p_value),
                nof1::report::explain(&model, r)
            )
            .context("writing to standard output")?;
        }
    }
    out.flush().context("writing to standard output")?;
    note(
        quiet,
        format!("checked {} patient(s): {}", summary.total(), summary.line()),
    );
    if failing > 0 {
        Ok(ExitCode::from(1))
    } else {
        Ok(ExitCode::SUCCESS)
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
    let container = nof1::model::format::decode_container(&bytes, &a.model)?;
    let graph_len = container.graph_len();
    let tree_stored = container.has_search_tree();
    let data = container.data;
    let checksum = u32::from_le_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    let p = &data.params;
    let mut groups: Vec<(String, usize)> = data
        .reference
        .group_names
        .iter()
        .map(|g| (g.clone(), 0))
        .collect();
    if let Some(codes) = &data.reference.groups {
        for &c in codes {
            if let Some(slot) = groups.get_mut(c as usize) {
                slot.1 += 1;
            }
        }
    }
    let cal = &data.calibration.pooled;
    if a.json {
        let v = serde_json::json!({
            "format_version": version,
            "crate_version": data.crate_version,
            "created": data.created,
            "checksum_crc32": format!("{checksum:08x}"),
            "reference_size": data.reference.ids.len(),
            "features": data.features.len(),
            "dropped_features": data.dropped_features,
            "components": data.components.n_components,
            "knn_components": data.components.knn_components,
            "parallel_analysis_components": data.components.n_parallel,
            "variance_components": data.components.n_variance,
            "noise_likeness": data.components.noise_likeness,
            "component_rule": data.components.rule.to_string(),
            "explained_variance": data.components.explained,
            "eigenvalues": data.components.eigenvalues,
            "null_eigenvalues": data.components.null_eigenvalues,
            "k": p.get_k(),
            "alpha": p.get_alpha(),
            "warn_alpha": p.get_warn_alpha(),
            "min_coverage": p.get_min_coverage(),
            "seed": p.get_seed(),
            "calibration_size": cal.n_members,
            "calibration_scheme": format!("{:?}", data.calibration.scheme),
            "folds": data.calibration.n_folds(),
            "calibration_method": data.calibration.method,
            "mondrian": data.calibration.by_group.is_some(),
            "index": data.index_kind.to_string(),
            "index_check": data.index_check,
            "hnsw_graph_bytes": graph_len,
            "search_tree": search_tree(&data, tree_stored),
            "groups": groups.iter().map(|(g, n)| serde_json::json!({"group": g, "n": n})).collect::<Vec<_>>(),
        });
        out!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(ExitCode::SUCCESS);
    }
    let radius = data.support_radius;
    out!("model            {}", a.model.display());
    out!(
        "format version   {version} (written by nof1 {})",
        data.crate_version
    );
    out!(
        "created          {} (seconds since 1970-01-01 UTC)",
        data.created
    );
    out!("checksum         crc32 {checksum:08x} (verified)");
    out!("reference        {} members", data.reference.ids.len());
    out!(
        "features         {} ({} dropped as constant{})",
        data.features.len(),
        data.dropped_features.len(),
        if data.dropped_features.is_empty() {
            String::new()
        } else {
            format!(": {}", preview(&data.dropped_features))
        }
    );
    out!(
        "components       {} by {}; {:.1}% of variance",
        data.components.n_components,
        data.components.rule,
        data.components.explained * 100.0
    );
    let scree: Vec<String> = data
        .components
        .eigenvalues
        .iter()
        .take(10)
        .map(|e| format!("{e:.3}"))
        .collect();
    if data.components.n_parallel > 0 {
        out!(
            "rule detail      parallel analysis keeps {}, 95% variance needs {}; noise-likeness {:.3} ({} {})",
            data.components.n_parallel,
            data.components.n_variance,
            data.components.noise_likeness,
            if data.components.noise_likeness >= nof1::project::NOISE_FLATNESS {
                "≥"
            } else {
                "<"
            },
            nof1::project::NOISE_FLATNESS
        );
    }
    out!("scree (top 10)   {}", scree.join(" "));
    if !data.components.null_eigenvalues.is_empty() {
        let null: Vec<String> = data
            .components
            .null_eigenvalues
            .iter()
            .take(10)
            .map(|e| format!("{e:.3}"))
            .collect();
        out!("null 95% (PA)    {}", null.join(" "));
    }
    out!("k                {}", p.get_k());
    out!(
        "alpha            {} (warn_alpha {})",
        p.get_alpha(),
        p.get_warn_alpha()
    );
    out!("min coverage     {}", p.get_min_coverage());
    out!(
        "calibration      {} scores; {}",
        cal.n_members,
        data.calibration.method
    );
    out!("support radius   {radius:.4} (kNN statistic above which a patient is invisible)");
    out!(
        "mondrian         {}",
        if data.calibration.by_group.is_some() {
            "per group"
        } else {
            "pooled"
        }
    );
    let mut index_notes = Vec::new();
    match data.index_check {
        Some(chk) => index_notes.push(format!(
            "at fit, {} probes each: recall@{} {:.3} in distribution, {:.3} out of it; {:.1}% of calibration members re-checked exactly",
            chk.probes,
            p.get_k(),
            chk.recall_in,
            chk.recall_out,
            100.0 * chk.recheck_rate
        )),
        None if data.index_kind == nof1::index::IndexKind::Hnsw => {
            index_notes.push("recall not measured (version-1 model)".to_string())
        }
        None => index_notes.push("recall 1 by construction".to_string()),
    }
    index_notes.push(format!("exact search: {}", search_tree(&data, tree_stored)));
    if data.index_kind == nof1::index::IndexKind::Hnsw {
        let h = p.get_hnsw();
        index_notes.push(format!(
            "M {}, ef_search {}",
            h.max_connections, h.ef_search
        ));
        index_notes.push(match graph_len {
            Some(len) => format!("graph stored ({len} bytes)"),
            None => "graph rebuilt on load".to_string(),
        });
    }
    out!(
        "index            {} ({})",
        data.index_kind,
        index_notes.join("; ")
    );
    out!("seed             {}", p.get_seed());
    if groups.is_empty() {
        out!("groups           none");
    } else {
        let g: Vec<String> = groups.iter().map(|(g, n)| format!("{g} {n}")).collect();
        out!("groups           {}", g.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}

/// How a model's exact search runs: a stored k-d tree, one built on load,
/// or a full scan (small references, or more than `KD_TREE_MAX_DIM` search
/// components).
fn search_tree(data: &nof1::model::ModelData, stored: bool) -> &'static str {
    if stored {
        "k-d tree stored"
    } else if nof1::index::ExactIndex::uses_tree(
        data.reference.len(),
        data.components.knn_components,
    ) {
        "k-d tree built on load"
    } else {
        "full scan"
    }
}

fn audit(a: AuditArgs, quiet: bool) -> Result<ExitCode> {
    if a.patients.table.group_col.is_none() {
        bail!("nof1 audit needs --group-col to name the column of group labels");
    }
    std::fs::create_dir_all(&a.out_dir)
        .with_context(|| format!("creating {}", a.out_dir.display()))?;
    let model = load_model(&a.patients.model, quiet)?;
    let mut rows: Vec<Assessment> = Vec::new();
    stream_patients(&model, &a.patients, quiet, |r| {
        rows.extend_from_slice(r);
        Ok(())
    })?;
    write_audit(&model, &rows, &a.out_dir, quiet)?;
    Ok(ExitCode::SUCCESS)
}

fn write_audit(
    model: &Model,
    rows: &[Assessment],
    dir: &Path,
    quiet: bool,
) -> Result<nof1::report::Audit> {
    let audit = nof1::report::audit(model, rows);
    let write = |name: &str, text: &str| -> Result<PathBuf> {
        let path = dir.join(name);
        nof1::model::format::write_atomic(&path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    };
    write("audit.json", &audit.to_json())?;
    write("audit.tsv", &audit.to_tsv())?;
    let html = nof1::report::render_html(model, rows, Some(&audit), "nof1 audit");
    write("report.html", &html)?;
    write("scatter.svg", &nof1::report::scatter_svg(model, rows))?;
    note(
        quiet,
        format!(
            "wrote audit.json, audit.tsv, report.html and scatter.svg to {}",
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
        m.params().get_k(),
        m.params().get_alpha(),
        m.params().get_warn_alpha()
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
        m.params().get_alpha()
    );
    if let Some(dir) = &a.out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        write_audit(m, &run.assessments, dir, quiet)?;
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
            let alpha = params.get_alpha();
            out!("worst false-invisible rate over tables and seeds: {worst:.3} (alpha {alpha})");
            // What exact validity would give on held-out sets of these sizes.
            let above = all.iter().filter(|q| q.false_invisible > 0.10).count();
            let tails: Vec<f64> = all
                .iter()
                .map(|q| crate::eval::binomial_rate_above(q.n_normal, alpha, 0.10))
                .collect();
            let expected: f64 = tails.iter().sum();
            let p_none: f64 = tails.iter().map(|t| 1.0 - t).product();
            out!(
                "runs above 0.10: {above} of {}; if every p-value were exactly valid: {expected:.2} expected, P(none) = {p_none:.2} (binomial, same held-out sizes)",
                all.len()
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
            n,
            features,
            patients,
            seed,
            out,
        } => {
            let params = crate::synth::SynthParams {
                n,
                features,
                patients,
                seed,
                ..crate::synth::SynthParams::default()
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
