//! Genotype input: a model fitted on a VCF of the bundled 1000 Genomes panel
//! gives the same verdicts and p-values to patients however their VCF was
//! written (chr prefixes, missing ids, shuffled samples, REF/ALT swapped,
//! the other strand, gzip) and to the PLINK fileset plink2 makes of it.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod harness;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use harness::{OutCsv, Scratch, fixtures};

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
/// each record passed through `edit`.
fn write_vcf(s: &Scratch, name: &str, cols: &[usize], edit: impl Fn(&mut Vec<String>)) -> PathBuf {
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
    for r in &records {
        let mut f: Vec<String> = r[..9].to_vec();
        f.extend(cols.iter().map(|&c| r[9 + c].clone()));
        edit(&mut f);
        out.push_str(&f.join("\t"));
        out.push('\n');
    }
    s.write(name, out)
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

/// Verdict and p-value by patient id.
fn results(out: &Path) -> BTreeMap<String, (String, String)> {
    let csv = OutCsv::read(out);
    let (id, v, p) = (csv.col("id"), csv.col("verdict"), csv.col("p_value"));
    csv.rows
        .iter()
        .map(|r| (r[id].clone(), (r[v].clone(), r[p].clone())))
        .collect()
}

fn reference_and_model(s: &Scratch) -> PathBuf {
    let cols: Vec<usize> = (0..2504).step_by(4).collect();
    let reference = write_vcf(s, "reference.vcf", &cols, |_| {});
    let model = s.path("m.nof1");
    s.run(&[
        "fit",
        "--reference",
        reference.to_str().unwrap(),
        "--out",
        model.to_str().unwrap(),
        "--quiet",
    ])
    .ok();
    model
}

fn assess(
    s: &Scratch,
    model: &Path,
    input: &Path,
    extra: &[&str],
) -> BTreeMap<String, (String, String)> {
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
    assert!(run.stderr.contains("variants matched"), "{}", run.stderr);
    results(&out)
}

/// Patients: 160 samples that are not in the reference.
fn patient_cols() -> Vec<usize> {
    (1..2504).step_by(16).collect()
}

#[test]
fn vcfs_written_other_ways_give_the_same_verdicts_and_p_values() {
    let s = Scratch::new();
    let model = reference_and_model(&s);
    let cols = patient_cols();
    let clean = assess(&s, &model, &write_vcf(&s, "clean.vcf", &cols, |_| {}), &[]);
    assert_eq!(clean.len(), cols.len());
    // chr prefixes and no ids.
    let chr = write_vcf(&s, "chr.vcf", &cols, |f| {
        f[0] = format!("chr{}", f[0]);
        f[2] = ".".into();
    });
    assert_eq!(assess(&s, &model, &chr, &[]), clean);
    // Samples in another order.
    let mut shuffled = cols.clone();
    shuffled.reverse();
    shuffled.swap(3, 40);
    let sh = write_vcf(&s, "shuffled.vcf", &shuffled, |_| {});
    assert_eq!(assess(&s, &model, &sh, &[]), clean);
    // REF and ALT swapped, calls recoded.
    let swapped = write_vcf(&s, "swapped.vcf", &cols, |f| {
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
    });
    assert_eq!(assess(&s, &model, &swapped, &[]), clean);
    // The other strand (every SNP that is not A/T or C/G complemented).
    let flipped = write_vcf(&s, "flipped.vcf", &cols, |f| {
        if !ambiguous(&f[3], &f[4]) {
            f[3] = complement(&f[3]);
            f[4] = complement(&f[4]);
        }
    });
    assert_eq!(assess(&s, &model, &flipped, &[]), clean);
    // gzip.
    let text = std::fs::read(s.path("clean.vcf")).unwrap();
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(&text).unwrap();
    let gz = s.write("clean.vcf.gz", e.finish().unwrap());
    assert_eq!(assess(&s, &model, &gz, &[]), clean);
}

#[test]
fn a_sample_matched_on_a_third_of_the_panel_is_insufficient_data() {
    let s = Scratch::new();
    let model = reference_and_model(&s);
    let cols = patient_cols();
    let third = {
        let (_, records) = panel();
        let keep: Vec<String> = records.iter().step_by(3).map(|r| r[2].clone()).collect();
        write_vcf(&s, "third.vcf", &cols, move |f| {
            if !keep.contains(&f[2]) {
                // Moved away: the model's site is absent from this file.
                f[0] = "99".into();
                f[2] = ".".into();
            }
        })
    };
    let out = assess(&s, &model, &third, &[]);
    assert!(
        out.values().all(|(v, _)| v == "insufficient_data"),
        "{out:?}"
    );
}

#[test]
fn a_plink_fileset_made_by_plink2_gives_the_same_verdicts_as_the_vcf() {
    let plink2 = std::process::Command::new("plink2")
        .arg("--version")
        .output();
    assert!(
        plink2.is_ok_and(|o| o.status.success()),
        "this test needs plink2 (Debian package plink2: apt-get install -y plink2; .ci/run installs it)"
    );
    let s = Scratch::new();
    let model = reference_and_model(&s);
    let vcf = write_vcf(&s, "clean.vcf", &patient_cols(), |_| {});
    let clean = assess(&s, &model, &vcf, &[]);
    let status = std::process::Command::new("plink2")
        .args(["--vcf", vcf.to_str().unwrap(), "--make-bed", "--out"])
        .arg(s.path("clean"))
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "plink2 --make-bed failed");
    assert_eq!(assess(&s, &model, &s.path("clean.bed"), &[]), clean);
}

#[test]
fn labels_give_groups_and_mondrian_needs_every_sample_labelled() {
    let s = Scratch::new();
    let cols: Vec<usize> = (0..2504).step_by(4).collect();
    let reference = write_vcf(&s, "reference.vcf", &cols, |_| {});
    let labels = fixtures().join("1000genomes-aisnp/samples.tsv");
    let model = s.path("m.nof1");
    s.run(&[
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
    ])
    .ok();
    // Label rows for samples that are not in the reference are counted.
    let short = s.write("short.tsv", "sample\tsuperpopulation\nHG00096\tEUR\n");
    let vcf = write_vcf(&s, "p.vcf", &[0, 1], |_| {});
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
    .error(&["HG00097", "has no row in the labels"]);
}

#[test]
fn bad_genotype_files_are_named() {
    let s = Scratch::new();
    let model = reference_and_model(&s);
    let vcf = write_vcf(&s, "bad.vcf", &[0, 1, 2], |f| {
        if f[2] == "rs2946788" {
            f[10] = "0/x".into();
        }
    });
    let run = s.run(&[
        "assess",
        "--model",
        model.to_str().unwrap(),
        "--input",
        vcf.to_str().unwrap(),
    ]);
    run.error(&["bad.vcf:", "malformed GT \"0/x\""]);
    let bed = s.write("x.bed", [0u8, 1, 2, 3]);
    s.write("x.bim", "1\trs1\t0\t10\tG\tA\n");
    s.write("x.fam", "f a 0 0 1 -9\n");
    s.run(&[
        "assess",
        "--model",
        model.to_str().unwrap(),
        "--input",
        bed.to_str().unwrap(),
    ])
    .error(&["x.bed: not a PLINK 1 .bed"]);
}
