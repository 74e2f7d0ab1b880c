//! The JSON Lines output against its JSON Schema, `docs/assessment.schema.json`:
//! every line of real `nof1 assess --format jsonl` output validates, fields come
//! in the schema's `x-field-order`, and `insufficient_data` rows carry `null`
//! where nothing could be computed.
//!
//! The validator below implements the part of JSON Schema (2020-12) the file
//! uses: `type` (one or several), `enum`, `const`, `properties`, `required`,
//! `additionalProperties: false`, `items`, `minItems`/`maxItems`, `minimum`,
//! `maximum`, `exclusiveMinimum`, `$ref` to `#/$defs/…`, `allOf` and
//! `if`/`then`/`else`. A keyword it does not know fails the test, so the
//! schema cannot silently say more than is checked.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic on failure

mod harness;

use std::path::{Path, PathBuf};

use harness::{Scratch, small_patients, small_reference};
use serde_json::Value;

fn schema() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/assessment.schema.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).expect("schema is JSON")
}

/// Errors of `value` against `schema` (empty = valid), each naming the path.
fn validate(root: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let Some(s) = schema.as_object() else {
        errors.push(format!("{at}: schema is not an object"));
        return;
    };
    for (key, rule) in s {
        match key.as_str() {
            "$schema" | "$id" | "$defs" | "title" | "description" | "x-field-order" => {}
            "$ref" => {
                let name = rule
                    .as_str()
                    .and_then(|r| r.strip_prefix("#/$defs/"))
                    .expect("only #/$defs/ references");
                let target = &root["$defs"][name];
                assert!(!target.is_null(), "unknown $ref {name}");
                validate(root, target, value, at, errors);
            }
            "type" => {
                let types: Vec<&str> = match rule {
                    Value::String(t) => vec![t.as_str()],
                    Value::Array(ts) => ts.iter().map(|t| t.as_str().unwrap()).collect(),
                    _ => panic!("bad type rule"),
                };
                if !types.iter().any(|t| has_type(value, t)) {
                    errors.push(format!("{at}: {value} is not of type {types:?}"));
                }
            }
            "enum" => {
                if !rule.as_array().unwrap().contains(value) {
                    errors.push(format!("{at}: {value} is not one of {rule}"));
                }
            }
            "const" => {
                if rule != value {
                    errors.push(format!("{at}: {value} is not {rule}"));
                }
            }
            "minimum" | "maximum" | "exclusiveMinimum" => {
                if let Some(x) = value.as_f64() {
                    let bound = rule.as_f64().unwrap();
                    let ok = match key.as_str() {
                        "minimum" => x >= bound,
                        "maximum" => x <= bound,
                        _ => x > bound,
                    };
                    if !ok {
                        errors.push(format!("{at}: {x} violates {key} {bound}"));
                    }
                }
            }
            "minItems" | "maxItems" => {
                if let Some(a) = value.as_array() {
                    let n = rule.as_u64().unwrap() as usize;
                    let ok = if key == "minItems" {
                        a.len() >= n
                    } else {
                        a.len() <= n
                    };
                    if !ok {
                        errors.push(format!("{at}: {} items violates {key} {n}", a.len()));
                    }
                }
            }
            "items" => {
                if let Some(a) = value.as_array() {
                    for (i, v) in a.iter().enumerate() {
                        validate(root, rule, v, &format!("{at}[{i}]"), errors);
                    }
                }
            }
            "required" => {
                if let Some(o) = value.as_object() {
                    for r in rule.as_array().unwrap() {
                        let r = r.as_str().unwrap();
                        if !o.contains_key(r) {
                            errors.push(format!("{at}: required field {r} is missing"));
                        }
                    }
                }
            }
            "properties" => {
                if let Some(o) = value.as_object() {
                    for (name, sub) in rule.as_object().unwrap() {
                        if let Some(v) = o.get(name) {
                            validate(root, sub, v, &format!("{at}.{name}"), errors);
                        }
                    }
                }
            }
            "additionalProperties" => {
                assert_eq!(
                    rule,
                    &Value::Bool(false),
                    "only additionalProperties: false"
                );
                if let Some(o) = value.as_object() {
                    let known = s.get("properties").and_then(Value::as_object);
                    for name in o.keys() {
                        if !known.is_some_and(|k| k.contains_key(name)) {
                            errors.push(format!(
                                "{at}: field {name} is not in the schema (add it to docs/assessment.schema.json: properties and x-field-order)"
                            ));
                        }
                    }
                }
            }
            "allOf" => {
                for sub in rule.as_array().unwrap() {
                    validate(root, sub, value, at, errors);
                }
            }
            "if" => {
                let mut probe = Vec::new();
                validate(root, rule, value, at, &mut probe);
                let branch = if probe.is_empty() { "then" } else { "else" };
                if let Some(sub) = s.get(branch) {
                    validate(root, sub, value, &format!("{at} ({branch})"), errors);
                }
            }
            "then" | "else" => {}
            other => panic!("the test's validator does not know the keyword {other:?}"),
        }
    }
}

fn has_type(v: &Value, t: &str) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.is_u64() || v.is_i64(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => panic!("unknown type {t}"),
    }
}

/// A JSON value's keys in the order they appear in its text (objects), or
/// its items (arrays); `serde_json::Value` keeps keys sorted, so the order is
/// read with a visitor.
enum Shape {
    Object(Vec<(String, Shape)>),
    Array(Vec<Shape>),
    Leaf,
}

impl<'de> serde::Deserialize<'de> for Shape {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Shape, D::Error> {
        use serde::de::{MapAccess, SeqAccess, Visitor};
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Shape;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("JSON")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Shape, A::Error> {
                let mut keys = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    keys.push((k, map.next_value::<Shape>()?));
                }
                Ok(Shape::Object(keys))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Shape, A::Error> {
                let mut items = Vec::new();
                while let Some(x) = seq.next_element::<Shape>()? {
                    items.push(x);
                }
                Ok(Shape::Array(items))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Shape, E> {
                Ok(Shape::Leaf)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Shape, E> {
                Ok(Shape::Leaf)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Shape, E> {
                Ok(Shape::Leaf)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Shape, E> {
                Ok(Shape::Leaf)
            }
            fn visit_str<E>(self, _: &str) -> Result<Shape, E> {
                Ok(Shape::Leaf)
            }
            fn visit_unit<E>(self) -> Result<Shape, E> {
                Ok(Shape::Leaf)
            }
        }
        d.deserialize_any(V)
    }
}

impl Shape {
    fn keys(&self) -> Vec<String> {
        match self {
            Shape::Object(kv) => kv.iter().map(|(k, _)| k.clone()).collect(),
            _ => Vec::new(),
        }
    }
    fn field(&self, name: &str) -> &Shape {
        match self {
            Shape::Object(kv) => &kv.iter().find(|(k, _)| k == name).expect("field").1,
            _ => panic!("not an object"),
        }
    }
    fn items(&self) -> &[Shape] {
        match self {
            Shape::Array(items) => items,
            _ => panic!("not an array"),
        }
    }
}

/// Asserts `keys` follow `order` (a subsequence of it, nothing unknown).
#[track_caller]
fn assert_in_order(keys: &[String], order: &Value, what: &str) {
    let order: Vec<&str> = order
        .as_array()
        .expect("x-field-order")
        .iter()
        .map(|k| k.as_str().unwrap())
        .collect();
    let positions: Vec<usize> = keys
        .iter()
        .map(|k| {
            order
                .iter()
                .position(|o| o == k)
                .unwrap_or_else(|| panic!("{what}: field {k} not in x-field-order"))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "{what}: fields {keys:?} not in the order {order:?}"
    );
}

/// JSONL output of `nof1 assess` for `input` against a model fitted on
/// `reference` (with `fit_extra`), read with `assess_extra`.
fn jsonl(
    s: &Scratch,
    reference: &Path,
    fit_extra: &[&str],
    input: &Path,
    assess_extra: &[&str],
) -> String {
    let m = s.path("m.nof1");
    let mut fit: Vec<&std::ffi::OsStr> = vec![
        "fit".as_ref(),
        "-q".as_ref(),
        "--reference".as_ref(),
        reference.as_os_str(),
        "--out".as_ref(),
        m.as_os_str(),
    ];
    fit.extend(fit_extra.iter().map(std::ffi::OsStr::new));
    s.run(&fit).ok();
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "assess".as_ref(),
        "-q".as_ref(),
        "--model".as_ref(),
        m.as_os_str(),
        "--input".as_ref(),
        input.as_os_str(),
        "--out".as_ref(),
        "-".as_ref(),
        "--format".as_ref(),
        "jsonl".as_ref(),
    ];
    args.extend(assess_extra.iter().map(std::ffi::OsStr::new));
    let run = s.run(&args);
    run.ok();
    run.stdout_text()
}

/// The fixture patients plus an all-missing one and one with a single value
/// (both `insufficient_data`), a far one (`invisible`, with top features), and
/// a `site` column: `A`/`B` like the reference, and `C` (no calibration of its
/// own: the pooled fallback).
fn inputs(s: &Scratch) -> (PathBuf, PathBuf) {
    let mut reference = String::from("id,f1,f2,f3,f4,f5,site\n");
    for (i, l) in std::fs::read_to_string(small_reference())
        .unwrap()
        .lines()
        .skip(1)
        .enumerate()
    {
        reference.push_str(&format!("{l},{}\n", if i % 2 == 0 { "A" } else { "B" }));
    }
    let mut patients = String::from("id,f1,f2,f3,f4,f5,site\n");
    for (i, l) in std::fs::read_to_string(small_patients())
        .unwrap()
        .lines()
        .skip(1)
        .enumerate()
    {
        patients.push_str(&format!("{l},{}\n", ["A", "B", "C"][i % 3]));
    }
    patients.push_str("none,NA,NA,NA,NA,NA,A\none,10,,,,,B\nfar,90,-90,90,-90,90,C\n");
    (s.write("ref.csv", reference), s.write("pat.csv", patients))
}

#[test]
fn jsonl_output_validates_against_the_schema() {
    let schema = schema();
    let s = Scratch::new();
    let (reference, patients) = inputs(&s);
    let panel_vcf = harness::fixtures().join("1000genomes-aisnp/seldin.aisnp.1kg.vcf.gz");
    let runs = [
        // Plain model, input read without groups.
        jsonl(&s, &small_reference(), &[], &small_patients(), &[]),
        // Plain model, the group column read: `group` fields.
        jsonl(
            &s,
            &reference,
            &["--exclude", "site"],
            &patients,
            &["--group-col", "site"],
        ),
        // Mondrian model: neighbours carry groups; group C falls back.
        jsonl(
            &s,
            &reference,
            &["--group-col", "site", "--calibrate-by", "site", "--k", "5"],
            &patients,
            &["--group-col", "site"],
        ),
        // HNSW index.
        jsonl(
            &s,
            &small_reference(),
            &["--index", "hnsw"],
            &patients,
            &["--exclude", "site"],
        ),
        // Batch control: a `q_value` field on every line.
        jsonl(
            &s,
            &small_reference(),
            &[],
            &small_patients(),
            &["--fdr", "0.1"],
        ),
        // Genotypes: a VCF model and VCF patients, `variant_match` fields.
        jsonl(&s, &panel_vcf, &[], &panel_vcf, &[]),
    ];
    let mut seen = std::collections::BTreeSet::new();
    let mut n = 0;
    for (r, text) in runs.iter().enumerate() {
        for (i, line) in text.lines().enumerate() {
            let what = format!("run {r} line {}", i + 1);
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{what}: {e}"));
            let mut errors = Vec::new();
            validate(&schema, &schema, &v, "$", &mut errors);
            assert!(errors.is_empty(), "{what}: {line}\n{}", errors.join("\n"));
            let shape: Shape = serde_json::from_str(line).unwrap();
            assert_in_order(&shape.keys(), &schema["x-field-order"], &what);
            for (key, def) in [("neighbours", "neighbour"), ("top_features", "feature")] {
                for (j, item) in shape.field(key).items().iter().enumerate() {
                    assert_in_order(
                        &item.keys(),
                        &schema["$defs"][def]["x-field-order"],
                        &format!("{what} {key}[{j}]"),
                    );
                }
            }
            seen.insert(v["verdict"].as_str().unwrap().to_string());
            if v["pooled_fallback"] == Value::Bool(true) {
                seen.insert("pooled_fallback".into());
            }
            if v.get("group").is_some() {
                seen.insert("group".into());
            }
            if v.get("variant_match").is_some() {
                seen.insert("variant_match".into());
                assert_in_order(
                    &shape.field("variant_match").keys(),
                    &schema["$defs"]["variant_match"]["x-field-order"],
                    &format!("{what} variant_match"),
                );
            }
            if v["neighbours"][0].get("group").is_some() {
                seen.insert("neighbour group".into());
            }
            assert_eq!(v.get("q_value").is_some(), r == 4, "{what}: q_value");
            n += 1;
        }
    }
    assert!(n > 80, "{n} lines");
    // Every shape the schema describes was seen in real output.
    for want in [
        "supported",
        "low_support",
        "invisible",
        "insufficient_data",
        "pooled_fallback",
        "group",
        "neighbour group",
        "variant_match",
    ] {
        assert!(seen.contains(want), "no {want} in the outputs: {seen:?}");
    }
}

/// The exact nulls of an `insufficient_data` row, and that the schema
/// rejects a row that breaks them (the validator can fail).
#[test]
fn insufficient_data_rows_have_nulls_and_the_schema_rejects_numbers() {
    let schema = schema();
    let s = Scratch::new();
    let p = s.write("p.csv", "id,f1,f2,f3,f4,f5\nnone,NA,NA,NA,NA,NA\n");
    let text = jsonl(&s, &small_reference(), &[], &p, &[]);
    let v: Value = serde_json::from_str(text.trim()).unwrap();
    assert_eq!(v["verdict"], "insufficient_data");
    for k in [
        "p_value",
        "novelty",
        "knn_distance",
        "p_novelty",
        "residual",
        "p_residual",
        "density",
        "support",
        "nearest_id",
        "nearest_distance",
    ] {
        assert!(v[k].is_null(), "{k} = {}", v[k]);
    }
    assert_eq!(v["coverage"], 0.0);
    assert_eq!(v["note"], "");
    let mut errors = Vec::new();
    validate(&schema, &schema, &v, "$", &mut errors);
    assert!(errors.is_empty(), "{errors:?}");
    // Broken copies are refused.
    let broken = [
        ("p_value", serde_json::json!(0.5)),
        ("support", serde_json::json!(3)),
        ("verdict", serde_json::json!("unknown")),
        ("coverage", serde_json::json!(null)),
        ("extra_field", serde_json::json!(1)),
    ];
    for (k, x) in broken {
        let mut b = v.clone();
        b[k] = x;
        let mut errors = Vec::new();
        validate(&schema, &schema, &b, "$", &mut errors);
        assert!(!errors.is_empty(), "{k} accepted");
    }
    let mut b = v.clone();
    b.as_object_mut().unwrap().remove("note");
    let mut errors = Vec::new();
    validate(&schema, &schema, &b, "$", &mut errors);
    assert!(!errors.is_empty(), "a missing field accepted");
    // Order: a reordered line is caught.
    let result = std::panic::catch_unwind(|| {
        assert_in_order(
            &["verdict".to_string(), "id".to_string()],
            &schema["x-field-order"],
            "swapped",
        )
    });
    assert!(result.is_err());
}
