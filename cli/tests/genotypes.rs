//! Genotype input: a model fitted on a VCF of the bundled 1000 Genomes panel
//! gives the same verdicts and p-values to patients however their VCF was
//! written (chr prefixes, missing ids, shuffled samples, REF/ALT swapped,
//! the other strand, gzip, bgzip, BCF) and to the PLINK fileset plink2 makes
//! of it; labels beside every input format; bad files named with their line
//! or record.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod harness;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use harness::{OutCsv, Scratch, fixtures, require_program, small_patients, small_reference};

/// The bundled VCF, decompressed: (meta lines + #CHROM line, records).
fn panel() -> (Vec<String>, Vec<Vec<String>>) {
    let path = fixtures().join("1000genomes-aisnp/seldin.aisnp.1kg.vcf.gz");
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap()),
        &mut text,
    )
    .unwrap();
    let mut head = Vec::new();
    let mut records = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            head.push(line.to_string());
        } else {
            records.push(line.split('\t').map(str::to_string).collect::<Vec<_>>());
        }
    }
    // Sorted by chromosome and position (plink2 refuses split chromosomes).
    records.sort_by_key(|r| {
        (
            r[0].parse::<u32>().unwrap_or(99),
            r[1].parse::<u64>().unwrap_or(0),
        )
    });
    (head, records)
}

/// A VCF of the panel's samples `cols` (indices among the sample columns),
/// each record (with its index) passed through `edit`.
fn write_vcf(
    s: &Scratch,
    name: &str,
    cols: &[usize],
    edit: impl Fn(usize, &mut Vec<String>),
) -> PathBuf {
    s.write(name, vcf_text(cols, edit))
}

fn vcf_text(cols: &[usize], edit: impl Fn(usize, &mut Vec<String>)) -> String {
    let (head, records) = panel();
    let mut out = String::new();
    for h in &head[..head.len() - 1] {
        out.push_str(h);
        out.push('\n');
    }
    let chrom: Vec<&str> = head[head.len() - 1].split('\t').collect();
    let mut fields: Vec<&str> = chrom[..9].to_vec();
    fields.extend(cols.iter().map(|&c| chrom[9 + c]));
    out.push_str(&fields.join("\t"));
    out.push('\n');
    for (i, r) in records.iter().enumerate() {
        let mut f: Vec<String> = r[..9].to_vec();
        f.extend(cols.iter().map(|&c| r[9 + c].clone()));
        edit(i, &mut f);
        out.push_str(&f.join("\t"));
        out.push('\n');
    }
    out
}

/// Number of meta lines (`##`) of the panel: record `i` is on line
/// `meta_lines() + 2 + i`.
fn meta_lines() -> usize {
    panel().0.len() - 1
}

fn complement(a: &str) -> String {
    a.chars()
        .map(|c| match c {
            'A' => 'T',
            'T' => 'A',
            'C' => 'G',
            'G' => 'C',
            o => o,
        })
        .collect()
}

fn ambiguous(r: &str, a: &str) -> bool {
    r.len() == 1 && complement(r) == a
}

/// Swaps REF and ALT of a biallelic record and recodes its calls.
fn swap_alleles(f: &mut [String]) {
    f.swap(3, 4);
    for g in &mut f[9..] {
        *g = g
            .chars()
            .map(|c| match c {
                '0' => '1',
                '1' => '0',
                o => o,
            })
            .collect();
    }
}

/// Verdict and p-value by patient id.
fn results(out: &Path) -> BTreeMap<String, (String, String)> {
    let csv = OutCsv::read(out);
    let (id, v, p) = (csv.col("id"), csv.col("verdict"), csv.col("p_value"));
    csv.rows
        .iter()
        .map(|r| (r[id].clone(), (r[v].clone(), r[p].clone())))
        .collect()
}

/// Reference samples: every fourth of the panel.
fn reference_cols() -> Vec<usize> {
    (0..2504).step_by(4).collect()
}

/// Patients: 157 samples that are not in the reference.
fn patient_cols() -> Vec<usize> {
    (1..2504).step_by(16).collect()
}

fn fit(s: &Scratch, reference: &Path, extra: &[&str]) -> PathBuf {
    let model = s.path("m.nof1");
    let mut args = vec![
        "fit",
        "--reference",
        reference.to_str().unwrap(),
        "--out",
        model.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    s.run(&args).ok();
    model
}

fn reference_and_model(s: &Scratch) -> PathBuf {
    let reference = write_vcf(s, "reference.vcf", &reference_cols(), |_, _| {});
    fit(s, &reference, &["--quiet"])
}

/// Runs `nof1 assess` (CSV output) and returns the verdicts and stderr.
fn assess_with(
    s: &Scratch,
    model: &Path,
    input: &Path,
    extra: &[&str],
) -> (BTreeMap<String, (String, String)>, String) {
    let out = s.path(&format!(
        "{}.csv",
        input.file_name().unwrap().to_string_lossy()
    ));
    let mut args = vec![
        "assess",
        "--model",
        model.to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let run = s.run(&args);
    run.ok();
    (results(&out), run.stderr)
}

/// `assess_with` for genotype input: the match report must be on stderr.
fn assess(
    s: &Scratch,
    model: &Path,
    input: &Path,
    extra: &[&str],
) -> BTreeMap<String, (String, String)> {
    let (out, stderr) = assess_with(s, model, input, extra);
    assert!(stderr.contains("variants matched"), "{stderr}");
    out
}

/// The `group` of each line of a JSONL output (empty when absent).
fn jsonl_groups(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["group"].as_str().unwrap_or("").to_string()
        })
        .collect()
}

/// Runs plink2 (failing the test with a message when it is missing).
fn plink2(s: &Scratch, args: &[&str]) {
    require_program(
        "plink2",
        "Debian package plink2: apt-get install -y plink2; .ci/run installs it",
    );
    let out = std::process::Command::new("plink2")
        .args(args)
        .current_dir(s.dir())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "plink2 {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

#[test]
fn vcfs_written_other_ways_give_the_same_verdicts_and_p_values() {
    let s = Scratch::new();
    let model = reference_and_model(&s);
    let cols = patient_cols();
    let clean_vcf = write_vcf(&s, "clean.vcf", &cols, |_, _| {});
    let (clean, stderr) = assess_with(&s, &model, &clean_vcf, &[]);
    assert_eq!(clean.len(), cols.len());
    assert!(
        stderr.contains("127 of the model's 127 variants matched (127 as is, 0 REF/ALT swapped, 0 on the other strand, 0 strand-ambiguous"),
        "{stderr}"
    );
    // Not every patient gets the same verdict: the comparison can fail.
    let verdicts: std::collections::BTreeSet<&String> = clean.values().map(|(v, _)| v).collect();
    assert!(verdicts.len() > 1, "{verdicts:?}");
    // chr prefixes.
    let chr = write_vcf(&s, "chr.vcf", &cols, |_, f| f[0] = format!("chr{}", f[0]));
    assert_eq!(assess(&s, &model, &chr, &[]), clean);
    // No ids.
    let no_ids = write_vcf(&s, "no_ids.vcf", &cols, |_, f| f[2] = ".".into());
    assert_eq!(assess(&s, &model, &no_ids, &[]), clean);
    // Samples in another order.
    let mut shuffled = cols.clone();
    shuffled.reverse();
    shuffled.swap(3, 40);
    let sh = write_vcf(&s, "shuffled.vcf", &shuffled, |_, _| {});
    assert_eq!(assess(&s, &model, &sh, &[]), clean);
    // REF and ALT swapped, calls recoded.
    let swapped = write_vcf(&s, "swapped.vcf", &cols, |_, f| swap_alleles(f));
    let (out, stderr) = assess_with(&s, &model, &swapped, &[]);
    assert_eq!(out, clean);
    assert!(stderr.contains("127 REF/ALT swapped"), "{stderr}");
    // The other strand (every SNP that is not A/T or C/G complemented).
    let flipped = write_vcf(&s, "flipped.vcf", &cols, |_, f| {
        if !ambiguous(&f[3], &f[4]) {
            f[3] = complement(&f[3]);
            f[4] = complement(&f[4]);
        }
    });
    let (out, stderr) = assess_with(&s, &model, &flipped, &[]);
    assert_eq!(out, clean);
    assert!(stderr.contains("127 on the other strand"), "{stderr}");
    // Every edit at once, half the records swapped.
    let all = write_vcf(&s, "all.vcf", &shuffled, |i, f| {
        f[0] = format!("chr{}", f[0]);
        f[2] = ".".into();
        if i % 2 == 0 {
            swap_alleles(f);
        }
        f[3] = complement(&f[3]);
        f[4] = complement(&f[4]);
    });
    assert_eq!(assess(&s, &model, &all, &[]), clean);
    // gzip.
    let gz = s.write(
        "clean.vcf.gz",
        gzip(&std::fs::read(s.path("clean.vcf")).unwrap()),
    );
    assert_eq!(assess(&s, &model, &gz, &[]), clean);
    // The format named instead of told by the extension.
    let txt = s.write("clean.txt", std::fs::read(&clean_vcf).unwrap());
    assert_eq!(assess(&s, &model, &txt, &["--input-format", "vcf"]), clean);
    let run = s.run(&[
        "check",
        "--model",
        model.to_str().unwrap(),
        "--input",
        txt.to_str().unwrap(),
        "--format",
        "VCF",
    ]);
    assert!(
        run.stderr
            .contains("127 of the model's 127 variants matched"),
        "{}",
        run.stderr
    );
    let run = s.run(&[
        "assess",
        "--model",
        model.to_str().unwrap(),
        "--input",
        txt.to_str().unwrap(),
        "--input-format",
        "xls",
    ]);
    run.error(&["unknown input format \"xls\"", "vcf, bcf, plink"]);
    // Standard input takes a VCF when it is named; unnamed, a hint.
    let text = std::fs::read(&clean_vcf).unwrap();
    let stdin_args = |extra: &[&str]| {
        let mut a = vec![
            "assess",
            "--model",
            model.to_str().unwrap(),
            "--input",
            "-",
            "--out",
            "stdin.csv",
        ];
        a.extend_from_slice(extra);
        s.run_with_stdin(&a, Some(&text))
    };
    stdin_args(&["--input-format", "vcf"]).ok();
    assert_eq!(results(&s.path("stdin.csv")), clean);
    stdin_args(&[]).error(&["this looks like a VCF: name it .vcf or give --input-format vcf"]);
}

#[test]
fn a_sample_matched_on_a_third_of_the_panel_is_insufficient_data() {
    let s = Scratch::new();
    let model = reference_and_model(&s);
    let cols = patient_cols();
    // Records not kept move to another chromosome and lose their id: the
    // model's site is absent from this file.
    let third = write_vcf(&s, "third.vcf", &cols, |i, f| {
        if i % 3 != 0 {
            f[0] = "99".into();
            f[2] = ".".into();
        }
    });
    let (out, stderr) = assess_with(&s, &model, &third, &[]);
    assert!(
        stderr.contains("43 of the model's 127 variants matched")
            && stderr.contains("84 missing")
            && stderr.contains("every patient will be insufficient_data"),
        "{stderr}"
    );
    assert_eq!(out.len(), cols.len());
    assert!(
        out.values().all(|(v, _)| v == "insufficient_data"),
        "{out:?}"
    );
    let csv = OutCsv::read(&s.path("third.vcf.csv"));
    for c in csv.column("coverage") {
        let c: f64 = c.parse().unwrap();
        assert!(c <= 43.0 / 127.0 + 1e-12, "{c}");
    }
    // --missing-as-ref reads the absent sites as 0 ALT copies: every
    // patient is observed on the whole panel and gets a verdict.
    let (out, stderr) = assess_with(&s, &model, &third, &["--missing-as-ref"]);
    assert!(
        !stderr.contains("every patient will be insufficient_data"),
        "{stderr}"
    );
    assert!(
        out.values().all(|(v, _)| v != "insufficient_data"),
        "{out:?}"
    );
    // A file with none of the model's variants is an error.
    let none = write_vcf(&s, "none.vcf", &cols, |_, f| {
        f[0] = "99".into();
        f[2] = ".".into();
    });
    s.run(&[
        "assess",
        "--model",
        model.to_str().unwrap(),
        "--input",
        none.to_str().unwrap(),
    ])
    .error(&["none.vcf: none of the model's 127 variants is in the file"]);
}

#[test]
fn plink2_filesets_bcf_and_bgzip_give_the_same_verdicts_as_the_vcf() {
    let s = Scratch::new();
    let model = reference_and_model(&s);
    let vcf = write_vcf(&s, "clean.vcf", &patient_cols(), |_, _| {});
    let clean = assess(&s, &model, &vcf, &[]);
    plink2(&s, &["--vcf", "clean.vcf", "--make-bed", "--out", "clean"]);
    assert_eq!(assess(&s, &model, &s.path("clean.bed"), &[]), clean);
    // The fileset named by its prefix, with the format given.
    assert_eq!(
        assess(&s, &model, &s.path("clean"), &["--input-format", "plink"]),
        clean
    );
    plink2(
        &s,
        &["--vcf", "clean.vcf", "--export", "bcf", "--out", "exported"],
    );
    assert_eq!(assess(&s, &model, &s.path("exported.bcf"), &[]), clean);
    plink2(
        &s,
        &[
            "--vcf",
            "clean.vcf",
            "--export",
            "vcf",
            "bgz",
            "--out",
            "exported",
        ],
    );
    assert_eq!(assess(&s, &model, &s.path("exported.vcf.gz"), &[]), clean);
    // A model fitted on the BCF of the reference is the model fitted on its VCF.
    plink2(
        &s,
        &[
            "--vcf",
            "reference.vcf",
            "--export",
            "bcf",
            "--out",
            "reference",
        ],
    );
    let m2 = s.path("m2.nof1");
    s.run(&[
        "fit",
        "--quiet",
        "--reference",
        s.path("reference.bcf").to_str().unwrap(),
        "--out",
        m2.to_str().unwrap(),
    ])
    .ok();
    assert_eq!(assess(&s, &m2, &vcf, &[]), clean);
}

#[test]
fn use_ds_reads_the_dosage_field() {
    let s = Scratch::new();
    let model = reference_and_model(&s);
    let cols = patient_cols();
    let clean = assess(
        &s,
        &model,
        &write_vcf(&s, "clean.vcf", &cols, |_, _| {}),
        &[],
    );
    // DS beside GT: equal to the GT dosage, or its opposite 2 - x.
    let with_ds = |name: &str, opposite: bool| {
        write_vcf(&s, name, &cols, move |_, f| {
            f[8] = "GT:DS".into();
            for g in &mut f[9..] {
                let x = g.chars().filter(|&c| c == '1').count();
                let d = if opposite { 2 - x } else { x };
                *g = format!("{g}:{d}.000");
            }
        })
    };
    let same = with_ds("ds.vcf", false);
    let opposite = with_ds("ds_opposite.vcf", true);
    assert_eq!(assess(&s, &model, &same, &["--use-ds"]), clean);
    // Without --use-ds the GT is read; with it, the opposite DS changes verdicts.
    assert_eq!(assess(&s, &model, &opposite, &[]), clean);
    assert_ne!(assess(&s, &model, &opposite, &["--use-ds"]), clean);
    // DS in a BCF (plink2 writes it as one float per sample).
    plink2(
        &s,
        &[
            "--vcf",
            "ds.vcf",
            "dosage=DS",
            "--export",
            "bcf",
            "vcf-dosage=DS-force",
            "--out",
            "ds",
        ],
    );
    assert_eq!(assess(&s, &model, &s.path("ds.bcf"), &["--use-ds"]), clean);
}

#[test]
fn strand_ambiguous_sites_are_read_as_written_and_counted() {
    let s = Scratch::new();
    // The panel has no A/T or C/G SNP: make five of them, in the reference
    // and the patients alike.
    let make_ambiguous = |i: usize, f: &mut Vec<String>| {
        if i < 5 {
            f[3] = ["A", "T", "C", "G", "A"][i].into();
            f[4] = complement(&f[3]);
        }
    };
    let reference = write_vcf(&s, "reference.vcf", &reference_cols(), make_ambiguous);
    let model = fit(&s, &reference, &["--quiet"]);
    let cols = patient_cols();
    let clean = write_vcf(&s, "clean.vcf", &cols, make_ambiguous);
    let out = s.path("clean.jsonl");
    let run = s.run(&[
        "assess",
        "--model",
        model.to_str().unwrap(),
        "--input",
        clean.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    run.ok();
    assert!(
        run.stderr
            .contains("127 of the model's 127 variants matched (127 as is, 0 REF/ALT swapped, 0 on the other strand, 5 strand-ambiguous A/T or C/G read as written)"),
        "{}",
        run.stderr
    );
    let text = std::fs::read_to_string(&out).unwrap();
    assert_eq!(text.lines().count(), cols.len());
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let m = &v["variant_match"];
        assert_eq!(m["n_model"], 127, "{line}");
        assert_eq!(m["matched"], 127);
        assert_eq!(m["ambiguous"], 5);
        assert_eq!(m["dropped_ambiguous"], 0);
        assert_eq!(m["missing"], 0);
    }
    // Written with REF and ALT swapped, the ambiguous sites are still read
    // as written (swapped): the same verdicts.
    let written = write_vcf(&s, "swapped.vcf", &cols, |i, f| {
        make_ambiguous(i, f);
        if i < 5 {
            swap_alleles(f);
        }
    });
    let (a, _) = assess_with(&s, &model, &clean, &[]);
    assert_eq!(assess(&s, &model, &written, &[]), a);
    // --drop-ambiguous makes them missing, and says so.
    let (_, stderr) = assess_with(&s, &model, &clean, &["--drop-ambiguous"]);
    assert!(
        stderr.contains("122 of the model's 127 variants matched")
            && stderr.contains("5 ambiguous dropped"),
        "{stderr}"
    );
    // The audit records the match too.
    let dir = s.path("audit");
    s.run(&[
        "audit",
        "--model",
        model.to_str().unwrap(),
        "--input",
        clean.to_str().unwrap(),
        "--labels",
        fixtures()
            .join("1000genomes-aisnp/samples.tsv")
            .to_str()
            .unwrap(),
        "--group-col",
        "superpopulation",
        "--out-dir",
        dir.to_str().unwrap(),
    ])
    .ok();
    let audit: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("audit.json")).unwrap()).unwrap();
    assert_eq!(audit["variant_match"]["ambiguous"], 5, "{audit}");
    assert_eq!(audit["variant_match"]["matched"], 127);
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        html.contains("Variant match of the patients"),
        "no match in the report"
    );
}

#[test]
fn labels_give_groups_and_mondrian_needs_every_sample_labelled() {
    let s = Scratch::new();
    let reference = write_vcf(&s, "reference.vcf", &reference_cols(), |_, _| {});
    let labels = fixtures().join("1000genomes-aisnp/samples.tsv");
    let model = s.path("m.nof1");
    let run = s.run(&[
        "fit",
        "--reference",
        reference.to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
        "--group-col",
        "superpopulation",
        "--calibrate-by",
        "superpopulation",
        "--out",
        model.to_str().unwrap(),
    ]);
    run.ok();
    // Label rows for samples that are not in the reference are counted.
    assert!(
        run.stderr.contains(
            "626 of 626 sample(s) labelled by column \"superpopulation\"; 1878 label row(s) name samples not in"
        ),
        "{}",
        run.stderr
    );
    // inspect says the model matches genotype patients by variant.
    let run = s.run(&["inspect", "--model", model.to_str().unwrap()]);
    run.ok();
    assert!(
        run.stdout_text()
            .contains("variants         127 (chrom, pos, ref, alt, id;"),
        "{}",
        run.stdout_text()
    );
    // Assessing with labels: groups in the output, unused rows counted.
    let vcf = write_vcf(&s, "p.vcf", &[1, 2, 3], |_, _| {});
    let out = s.path("p.jsonl");
    let run = s.run(&[
        "assess",
        "--model",
        model.to_str().unwrap(),
        "--input",
        vcf.to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
        "--group-col",
        "superpopulation",
        "--out",
        out.to_str().unwrap(),
    ]);
    run.ok();
    assert!(
        run.stderr.contains("3 of 3 sample(s) labelled")
            && run.stderr.contains("2501 label row(s)"),
        "{}",
        run.stderr
    );
    assert_eq!(jsonl_groups(&out), vec!["EUR", "EUR", "EUR"]);
    // A Mondrian model needs every patient's group: the sample is named.
    let short = s.write("short.tsv", "sample\tsuperpopulation\nHG00097\tEUR\n");
    s.run(&[
        "assess",
        "--model",
        model.to_str().unwrap(),
        "--input",
        vcf.to_str().unwrap(),
        "--labels",
        short.to_str().unwrap(),
        "--group-col",
        "superpopulation",
    ])
    .error(&["sample \"HG00099\" has no row in the labels", "short.tsv"]);
    // So does a Mondrian fit.
    let first = std::fs::read_to_string(&labels).unwrap();
    let without: String = first
        .lines()
        .filter(|l| !l.starts_with("HG00096\t"))
        .map(|l| format!("{l}\n"))
        .collect();
    let without = s.write("without.tsv", without);
    s.run(&[
        "fit",
        "--reference",
        reference.to_str().unwrap(),
        "--labels",
        without.to_str().unwrap(),
        "--group-col",
        "superpopulation",
        "--calibrate-by",
        "superpopulation",
        "--out",
        s.path("m2.nof1").to_str().unwrap(),
    ])
    .error(&["sample \"HG00096\" has no row in the labels", "without.tsv"]);
    // --labels without --group-col names the columns to choose from.
    s.run(&[
        "assess",
        "--model",
        model.to_str().unwrap(),
        "--input",
        vcf.to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
    ])
    .error(&["needs --group-col", "population, superpopulation, sex"]);
}

/// `--labels` beside CSV and whitespace tables, at fit, assess, check and audit.
#[test]
fn labels_work_beside_tables() {
    let s = Scratch::new();
    // Labels for the small reference (r1..r60) and patients (p1..p20): two
    // sites; p20 has no row, and two rows name nobody.
    let mut labels = String::from("id,site,batch\n");
    for i in 1..=60 {
        labels.push_str(&format!("r{i},{},b\n", if i % 2 == 0 { "A" } else { "B" }));
    }
    for i in 1..20 {
        labels.push_str(&format!("p{i},{},b\n", if i % 2 == 0 { "A" } else { "B" }));
    }
    labels.push_str("ghost1,A,b\nghost2,B,b\n");
    let labels = s.write("labels.csv", labels);
    let reference_ids: Vec<String> = OutCsv::read(&small_reference()).column("id");
    assert_eq!(reference_ids[0], "r1", "fixture ids changed");
    let model = s.path("m.nof1");
    let run = s.run(&[
        "fit",
        "--reference",
        small_reference().to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
        "--group-col",
        "site",
        "--out",
        model.to_str().unwrap(),
    ]);
    run.ok();
    assert!(
        run.stderr
            .contains("60 of 60 sample(s) labelled by column \"site\"; 21 label row(s)"),
        "{}",
        run.stderr
    );
    let out = s.path("out.jsonl");
    let run = s.run(&[
        "assess",
        "--model",
        model.to_str().unwrap(),
        "--input",
        small_patients().to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
        "--group-col",
        "site",
        "--out",
        out.to_str().unwrap(),
    ]);
    run.ok();
    assert!(
        run.stderr.contains("19 of 20 sample(s) labelled")
            && run.stderr.contains("62 label row(s)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("1 sample(s) have no row in the labels and no group (first: p20)"),
        "{}",
        run.stderr
    );
    let groups = jsonl_groups(&out);
    assert_eq!(groups.len(), 20);
    assert_eq!(&groups[..3], ["B", "A", "B"]);
    assert_eq!(groups[19], "");
    // The same verdicts as the streamed file without labels (a plain model).
    let plain = s.path("plain.csv");
    s.run(&[
        "assess",
        "--model",
        model.to_str().unwrap(),
        "--input",
        small_patients().to_str().unwrap(),
        "--out",
        plain.to_str().unwrap(),
    ])
    .ok();
    let verdicts: Vec<String> = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            v["verdict"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(verdicts, OutCsv::read(&plain).column("verdict"));
    // gzip works for CSV and TSV tables too (told by content; a TSV named
    // `.tsv.gz` keeps its tab).
    let patients = std::fs::read_to_string(small_patients()).unwrap();
    let gz = s.write("patients.csv.gz", gzip(patients.as_bytes()));
    let tsv_gz = s.write(
        "patients.tsv.gz",
        gzip(patients.replace(',', "\t").as_bytes()),
    );
    for input in [&gz, &tsv_gz] {
        let out = s.path("gz.csv");
        s.run(&[
            "assess",
            "--model",
            model.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .ok();
        assert_eq!(results(&out), results(&plain), "{}", input.display());
    }
    // A `.txt` is a whitespace table: a tab-separated one with an empty
    // cell is refused with a hint, and read as TSV when named so.
    let txt = s.write(
        "patients.txt",
        patients.replace(',', "\t").replacen("\t11.0636", "\t", 1),
    );
    let args = |extra: &[&str]| {
        let mut a = vec![
            "assess",
            "--model",
            model.to_str().unwrap(),
            "--input",
            txt.to_str().unwrap(),
            "--out",
            "txt.csv",
        ];
        a.extend_from_slice(extra);
        s.run(&a)
    };
    args(&[]).error(&["patients.txt:2: ragged line", "needs --input-format tsv"]);
    args(&["--input-format", "tsv"]).ok();
    assert_eq!(OutCsv::read(&s.path("txt.csv")).rows.len(), 20);
    // check and audit take them too.
    s.run(&[
        "check",
        "--model",
        model.to_str().unwrap(),
        "--input",
        small_patients().to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
        "--group-col",
        "site",
    ])
    .no_panic();
    let dir = s.path("audit");
    s.run(&[
        "audit",
        "--model",
        model.to_str().unwrap(),
        "--input",
        small_patients().to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
        "--group-col",
        "site",
        "--out-dir",
        dir.to_str().unwrap(),
    ])
    .ok();
    let tsv = std::fs::read_to_string(dir.join("audit.tsv")).unwrap();
    assert!(tsv.lines().any(|l| l.starts_with("A\t9\t")), "{tsv}");
    assert!(tsv.lines().any(|l| l.starts_with("B\t10\t")), "{tsv}");
    // A whitespace PC table (plink2 .eigenvec layout) with labels beside it.
    let to_eigenvec = |src: &Path| {
        let csv = OutCsv::read(src);
        let mut t = String::from("#FID\tIID\tPC1\tPC2\tPC3\tPC4\tPC5\n");
        for r in &csv.rows {
            t.push_str(&format!("0\t{}\n", r.join("\t")));
        }
        t
    };
    let ref_pcs = s.write("ref.eigenvec", to_eigenvec(&small_reference()));
    let pat_pcs = s.write(
        "pat.eigenvec.gz",
        gzip(to_eigenvec(&small_patients()).as_bytes()),
    );
    let pc_model = s.path("pcs.nof1");
    s.run(&[
        "fit",
        "--reference",
        ref_pcs.to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
        "--group-col",
        "site",
        "--calibrate-by",
        "site",
        "--out",
        pc_model.to_str().unwrap(),
    ])
    .ok();
    let pc_out = s.path("pcs.csv");
    let run = s.run(&[
        "assess",
        "--model",
        pc_model.to_str().unwrap(),
        "--input",
        pat_pcs.to_str().unwrap(),
        "--labels",
        labels.to_str().unwrap(),
        "--group-col",
        "site",
        "--out",
        pc_out.to_str().unwrap(),
    ]);
    // p20 has no label, and the model is Mondrian: an error naming it.
    run.error(&["sample \"p20\" has no row in the labels"]);
    let run = s.run(&[
        "assess",
        "--model",
        pc_model.to_str().unwrap(),
        "--input",
        pat_pcs.to_str().unwrap(),
        "--out",
        pc_out.to_str().unwrap(),
    ]);
    run.ok();
    assert_eq!(OutCsv::read(&pc_out).rows.len(), 20);
}

#[test]
fn bad_genotype_files_are_named() {
    let s = Scratch::new();
    let model = reference_and_model(&s);
    let (_, records) = panel();
    let target = records.iter().position(|r| r[2] == "rs2946788").unwrap();
    let line = meta_lines() + 2 + target;
    let args = |input: &Path| {
        vec![
            "assess".to_string(),
            "--model".into(),
            model.to_str().unwrap().into(),
            "--input".into(),
            input.to_str().unwrap().into(),
        ]
    };
    // A malformed GT: file, line and sample.
    let vcf = write_vcf(&s, "bad.vcf", &[0, 1, 2], |i, f| {
        if i == target {
            f[10] = "0/x".into();
        }
    });
    s.run(&args(&vcf))
        .error(&[&format!("bad.vcf:{line}:HG00097: malformed GT \"0/x\"")]);
    // A record with the wrong number of samples.
    let vcf = write_vcf(&s, "short.vcf", &[0, 1, 2], |i, f| {
        if i == target {
            f.pop();
        }
    });
    s.run(&args(&vcf)).error(&[&format!(
        "short.vcf:{line}: record has 2 sample column(s), the #CHROM header names 3"
    )]);
    // A .bed with the wrong magic.
    let bed = s.write("x.bed", [0u8, 1, 2, 3]);
    s.write("x.bim", "1\trs1\t0\t10\tG\tA\n");
    s.write("x.fam", "f a 0 0 1 -9\n");
    s.run(&args(&bed))
        .error(&["x.bed: not a PLINK 1 .bed", "found 00 01 02"]);
    // .bim and .fam counts that disagree with the .bed size.
    let bed = s.write("y.bed", [0x6c, 0x1b, 0x01, 0xff]);
    s.write("y.bim", "1\trs1\t0\t10\tG\tA\n1\trs2\t0\t20\tC\tT\n");
    s.write("y.fam", "f a 0 0 1 -9\nf b 0 0 1 -9\nf c 0 0 1 -9\n");
    s.run(&args(&bed)).error(&[
        "y.bed: the .bed holds 4 bytes, but 2 variants (.bim lines) × 3 samples (.fam lines) need 3 + 2 × 1 = 5",
    ]);
    // A truncated BCF (plink2 writes it bgzipped; the raw BCF is read too).
    s.write("small.vcf", vcf_text(&[0, 1, 2], |_, _| {}));
    plink2(
        &s,
        &["--vcf", "small.vcf", "--export", "bcf", "--out", "small"],
    );
    let compressed = std::fs::read(s.path("small.bcf")).unwrap();
    let mut raw = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::MultiGzDecoder::new(&compressed[..]),
        &mut raw,
    )
    .unwrap();
    let whole = s.write("raw.bcf", &raw);
    s.run(&args(&whole)).ok();
    let cut = s.write("cut.bcf", &raw[..raw.len() - 7]);
    s.run(&args(&cut))
        .error(&["cut.bcf: record 127: truncated"]);
    let cut = s.write("cut_bgzf.bcf", &compressed[..compressed.len() / 2]);
    s.run(&args(&cut)).error(&["cut_bgzf.bcf", "truncated"]);
}
