"""The Python package against the CLI, on the repository's fixtures."""

import io
import pickle
import signal
import subprocess
import sys
import threading
import warnings

import numpy as np
import pandas as pd
import pytest

import nof1
from conftest import PANEL, ROOT, SMALL

# The CLI's parser reads the shortest round-trip decimals exactly; so does
# pandas >= 3 by default, older pandas with float_precision="round_trip".
PRECISE = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}


def read(path, **kw):
    # round_trip: the same doubles as the CLI's parser, hence the same model.
    return pd.read_csv(path, **PRECISE, **kw)


def read_cli_output(text):
    return pd.read_csv(
        io.StringIO(text),
        **PRECISE,
        dtype={"id": str, "nearest_id": str, "nearest_group": str, "note": str},
        keep_default_na=False,
        na_values={c: [""] for c in ["p_value", "novelty", "p_novelty", "residual",
                                     "p_residual", "density", "support", "coverage",
                                     "nearest_distance"]},
    )


def assert_same_as_cli(ours, theirs):
    assert list(ours.columns) == list(theirs.columns)
    assert [str(x) for x in ours["id"]] == list(theirs["id"])
    assert list(ours["verdict"]) == list(theirs["verdict"])
    for col in ["p_value", "novelty", "p_novelty", "residual", "p_residual", "density",
                "coverage", "nearest_distance"]:
        np.testing.assert_array_equal(ours[col].to_numpy(float), theirs[col].to_numpy(float), col)
    np.testing.assert_array_equal(
        ours["support"].to_numpy(float, na_value=np.nan), theirs["support"].to_numpy(float)
    )
    assert list(ours["nearest_id"]) == list(theirs["nearest_id"])
    assert list(ours["note"]) == list(theirs["note"])


@pytest.fixture(scope="module")
def small():
    return read(SMALL / "reference.csv"), read(SMALL / "patients.csv")


def test_verdicts_and_p_values_equal_the_cli(small, cli, tmp_path):
    reference, patients = small
    model = nof1.fit(reference, id_col="id", k=5)
    ours = model.assess(patients, id_col="id")
    cli("fit", "--reference", SMALL / "reference.csv", "--k", 5, "--out", tmp_path / "m.nof1")
    theirs = read_cli_output(
        cli("assess", "--model", tmp_path / "m.nof1", "--input", SMALL / "patients.csv")
    )
    assert_same_as_cli(ours, theirs)
    assert list(ours.columns) == list(nof1.CSV_COLUMNS) + ["reason", "note"]
    assert (ours.verdict.iloc[15:] == "invisible").all()


def test_model_files_interchange_both_ways(cli, tmp_path):
    panel = read(PANEL)
    eur = panel.superpopulation == "EUR"
    reference = panel[eur].iloc[::2]
    patients = panel.drop(reference.index)
    reference.to_csv(tmp_path / "ref.csv", index=False)
    patients.to_csv(tmp_path / "pat.csv", index=False)
    opts = dict(id_col="sample", group_col="superpopulation", exclude=["population", "sex"])

    # Python fits, the CLI assesses.
    model = nof1.fit(reference, **opts)
    model.save(tmp_path / "py.nof1")
    ours = model.assess(patients, **opts)
    args = ["--id-col", "sample", "--group-col", "superpopulation", "--exclude", "population,sex"]
    theirs = read_cli_output(
        cli("assess", "--model", tmp_path / "py.nof1", "--input", tmp_path / "pat.csv", *args)
    )
    assert_same_as_cli(ours, theirs)
    assert list(ours.nearest_group) == list(theirs.nearest_group)
    assert (ours.verdict[patients.superpopulation != "EUR"] != "supported").mean() > 0.8

    # The CLI fits, Python loads and assesses.
    cli("fit", "--reference", tmp_path / "ref.csv", "--out", tmp_path / "cli.nof1", *args)
    loaded = nof1.load(tmp_path / "cli.nof1")
    assert_same_as_cli(loaded.assess(patients, **opts), theirs)
    assert loaded.summary()["groups"] == model.summary()["groups"]


def test_numpy_and_pandas_give_the_same_assessments(small):
    reference, patients = small
    feats = ["f1", "f2", "f3", "f4", "f5"]
    by_frame = nof1.fit(reference[feats], k=5).assess(patients[feats])
    by_array = nof1.fit(reference[feats].to_numpy(), k=5).assess(patients[feats].to_numpy())
    by_f32 = nof1.fit(reference[feats].to_numpy(), k=5).assess(
        np.asfortranarray(patients[feats].to_numpy())
    )
    np.testing.assert_array_equal(by_frame.p_value, by_array.p_value)
    np.testing.assert_array_equal(by_frame.p_value, by_f32.p_value)
    assert list(by_array["id"]) == list(range(len(patients)))
    assert list(by_array.index) == list(range(len(patients)))


def test_features_are_matched_by_name_and_ids_keep_their_dtype(small):
    reference, patients = small
    model = nof1.fit(reference, id_col="id", k=5)
    shuffled = patients[["f5", "f3", "id", "f1", "f4", "f2"]].copy()
    shuffled["id"] = np.arange(100, 100 + len(patients))
    shuffled.index = [f"row{i}" for i in range(len(patients))]
    out = model.assess(shuffled, id_col="id")
    expected = model.assess(patients, id_col="id")
    np.testing.assert_array_equal(out.p_value, expected.p_value)
    assert list(out["id"]) == list(range(100, 100 + len(patients)))
    assert list(out.index) == list(shuffled.index)
    # Ids from the index, of any dtype.
    by_index = model.assess(patients.set_index("id"))
    assert list(by_index["id"]) == list(patients["id"])


def test_missing_values_nan_none_and_pd_na(small, cli, tmp_path):
    reference, patients = small
    model = nof1.fit(reference, id_col="id", k=5)
    holes = patients.copy()
    holes["f1"] = holes["f1"].astype(object)
    holes.loc[0, "f1"] = None
    holes.loc[1, "f1"] = pd.NA
    holes.loc[2, "f2"] = np.nan
    holes.loc[3, ["f1", "f2", "f3", "f4"]] = np.nan
    holes["f5"] = holes["f5"].astype("Float64")
    holes.loc[4, "f5"] = pd.NA
    ours = model.assess(holes, id_col="id")
    # The same holes as empty cells in a file, for the CLI.
    holes.to_csv(tmp_path / "holes.csv", index=False, na_rep="")
    model.save(tmp_path / "m.nof1")
    theirs = read_cli_output(cli("assess", "--model", tmp_path / "m.nof1", "--input", tmp_path / "holes.csv"))
    assert_same_as_cli(ours, theirs)
    assert ours.coverage.iloc[0] == pytest.approx(0.8)
    assert ours.verdict.iloc[3] == "insufficient_data"
    assert pd.isna(ours.support.iloc[3]) and pd.isna(ours.p_value.iloc[3])
    # A reference with missing cells fits too.
    ref = reference.copy()
    ref.loc[[1, 5], "f2"] = np.nan
    nof1.fit(ref, id_col="id", k=5)


def test_details_are_python_objects(small):
    reference, patients = small
    model = nof1.fit(reference, id_col="id", k=5)
    out, details = model.assess(patients, id_col="id", details=True)
    assert len(details) == len(out)
    far = details[-1]
    assert far["id"] == "p20" and far["verdict"] == "invisible"
    assert len(far["neighbours"]) == 5 and far["neighbours"][0]["id"] == out.nearest_id.iloc[-1]
    assert {t["feature"] for t in far["top_features"]} <= {"f1", "f2", "f3", "f4", "f5"}
    assert far["p_value"] == out.p_value.iloc[-1]


def test_summary_save_load_and_pickle(small, tmp_path):
    reference, patients = small
    model = nof1.fit(reference, id_col="id", k=5, seed=3)
    s = model.summary()
    assert s["members"] == 60 and s["k"] == 5 and s["seed"] == 3
    assert s["density_members"] == 60
    assert s["features"] == ["f1", "f2", "f3", "f4", "f5"]
    assert 1 <= s["components"] <= 5 and s["index"] == "exact"
    assert model.params["k"] == 5 and "members" in repr(model)
    model.save(tmp_path / "m.nof1")
    again = nof1.load(tmp_path / "m.nof1")
    clone = pickle.loads(pickle.dumps(model))
    for other in (again, clone):
        pd.testing.assert_frame_equal(
            other.assess(patients, id_col="id"), model.assess(patients, id_col="id")
        )


def test_summary_shows_blocks_channels_and_variants(small, cli, tmp_path):
    reference, _ = small
    s = nof1.fit(reference, id_col="id", k=5).summary()
    assert s["variants"] is None and s["blocks"] == []
    assert s["n_features"] == 5 and s["projected_features"] == 5
    assert [c["channel"] for c in s["channels"]] == ["knn", "residual", "value"]
    assert abs(sum(c["weight"] for c in s["channels"]) - 1) < 1e-9
    assert s["value_support"]["features"] == 5

    # A model the CLI fitted with blocks: the summary lists them.
    (tmp_path / "blocks.csv").write_text("feature,block\nf1,a\nf2,a\nf3,a\nf4,b\n")
    cli("fit", "--reference", SMALL / "reference.csv", "--blocks", tmp_path / "blocks.csv",
        "--out", tmp_path / "b.nof1")
    s = nof1.load(tmp_path / "b.nof1").summary()
    # f5, unlisted, forms the block "other".
    assert [(b["block"], b["features"], b["projected"]) for b in s["blocks"]] == [
        ("a", 3, 3), ("b", 1, 1), ("other", 1, 1)]
    for b in s["blocks"]:
        assert abs(b["mfa_weight"] - b["first_eigenvalue"] ** -0.5) < 1e-12
        assert 1 <= b["components_min"] <= b["components_max"] <= s["components"]
    assert [c["channel"] for c in s["channels"]][3:] == ["block:a", "block:b", "block:other"]

    # Python fits with the same blocks (a file or a mapping): the same
    # summary and assessments as the CLI's model.
    patients = read(SMALL / "patients.csv")
    theirs = read_cli_output(
        cli("assess", "--model", tmp_path / "b.nof1", "--input", SMALL / "patients.csv")
    )
    mapping = {"f1": "a", "f2": "a", "f3": "a", "f4": "b"}
    for blocks in (tmp_path / "blocks.csv", str(tmp_path / "blocks.csv"), mapping):
        model = nof1.fit(reference, id_col="id", blocks=blocks)
        assert model.summary()["blocks"] == s["blocks"]
        ours = model.assess(patients, id_col="id")
        assert_same_as_cli(ours, theirs)
        assert list(ours.reason) == list(theirs.reason)
    with pytest.raises(nof1.TableError, match='feature "nope"'):
        nof1.fit(reference, id_col="id", blocks={"nope": "a"})
    off = nof1.fit(reference, id_col="id", value_channel=False).summary()
    assert [c["channel"] for c in off["channels"]] == ["knn", "residual"]
    assert off["value_support"] is None

    # A model fitted on genotypes stores its variants.
    cli("fit", "--reference", ROOT / "fixtures/1000genomes-aisnp/seldin.aisnp.1kg.vcf.gz",
        "--out", tmp_path / "g.nof1")
    s = nof1.load(tmp_path / "g.nof1").summary()
    assert s["variants"] == s["n_features"] == len(s["features"]) > 100


def test_calibrate_by_group(small):
    reference, patients = small
    ref = reference.assign(site=["a", "b"] * 30)
    model = nof1.fit(ref, id_col="id", group_col="site", calibrate_by="site", k=5, alpha=0.1)
    assert model.summary()["mondrian"] == "per group"
    out = model.assess(patients.assign(site="a"), id_col="id", group_col="site")
    assert list(out.columns)[-3:] == ["nearest_group", "reason", "note"]
    with pytest.raises(nof1.ParameterError, match="calibrate_by='site' needs the same column"):
        nof1.fit(ref, id_col="id", calibrate_by="site")


def test_text_in_a_reference_column_names_column_and_row(small):
    reference, _ = small
    bad = reference.copy()
    bad["f3"] = bad["f3"].astype(object)
    bad.loc[7, "f3"] = "abc"
    with pytest.raises(nof1.TableError) as e:
        nof1.fit(bad, id_col="id")
    assert isinstance(e.value, ValueError)
    assert str(e.value) == (
        'row 7 (id "r8"), column "f3": not a number: "abc" '
        '(a non-numeric column can be left out with exclude=["f3"])'
    )
    assert e.value.row == 7 and e.value.column == "f3"
    # The same defect in a file, for comparison: the CLI's message.
    nof1.fit(bad, id_col="id", exclude=["f3"], k=5)


def test_other_bad_tables_and_options_raise_value_errors(small, tmp_path):
    reference, patients = small
    with pytest.raises(nof1.TableError, match='duplicate id "r1"'):
        nof1.fit(pd.concat([reference, reference.iloc[:1]]), id_col="id")
    with pytest.raises(nof1.TableError, match="non-finite value"):
        nof1.fit(reference.assign(f1=reference.f1.replace(reference.f1[0], np.inf)), id_col="id")
    with pytest.raises(nof1.TableError, match="id column 'nope' is not in the data frame"):
        nof1.fit(reference, id_col="nope")
    with pytest.raises(nof1.TableError, match="at least k \\+ 2"):
        nof1.fit(reference.iloc[:5], id_col="id")
    with pytest.raises(nof1.TableError, match="expected a 2-D array"):
        nof1.fit(np.zeros(10))
    with pytest.raises(nof1.ParameterError, match="alpha"):
        nof1.fit(reference, id_col="id", alpha=2.0)
    with pytest.raises(nof1.ParameterError, match="index"):
        nof1.fit(reference, id_col="id", index="bogus")
    graph = nof1.fit(reference, id_col="id", k=5, index="graph")
    assert graph.summary()["index"] == "graph"
    model = nof1.fit(reference, id_col="id", k=5)
    with pytest.raises(nof1.TableError, match="none of the model's 5 features"):
        model.assess(pd.DataFrame({"x": [1.0]}))
    (tmp_path / "junk.nof1").write_bytes(b"not a model at all")
    with pytest.raises(nof1.ModelFormatError):
        nof1.load(tmp_path / "junk.nof1")
    with pytest.raises(FileNotFoundError):
        nof1.load(tmp_path / "missing.nof1")


def test_patient_defects_become_notes_unless_strict(small):
    reference, patients = small
    model = nof1.fit(reference, id_col="id", k=5)
    bad = patients.copy()
    bad["f2"] = bad["f2"].astype(object)
    bad.loc[0, "f2"] = "oops"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = model.assess(bad, id_col="id")
    assert out.note.iloc[0] == 'f2: text "oops" read as missing'
    with pytest.raises(nof1.TableError, match='row 0 .*column "f2": not a number: "oops"'):
        model.assess(bad, id_col="id", strict=True)
    with pytest.warns(UserWarning, match="ignoring 1 column"):
        model.assess(patients.assign(extra=1.0), id_col="id")
    with pytest.warns(UserWarning, match="1 of the model's 5 features are absent"):
        model.assess(patients.drop(columns="f4"), id_col="id")


def test_progress_reports_every_step_and_its_exception_stops_the_fit(small):
    reference, _ = small
    seen = []
    nof1.fit(reference, id_col="id", k=5, progress=lambda *a: seen.append(a))
    steps = [step for step, done, _ in seen if done == 0]
    assert steps[0] == "projecting" and "reference densities" in steps
    for step in steps:
        ends = [(d, t) for s, d, t in seen if s == step and d == t]
        assert ends, f"step {step!r} was not reported as finished: {seen}"
    for step, done, total in seen:
        assert 0 <= done <= total

    class Stop(Exception):
        pass

    def stop(step, done, total):
        raise Stop(step)

    with pytest.raises(Stop, match="projecting"):
        nof1.fit(reference, id_col="id", k=5, progress=stop)


# A fit of 400,000 × 32 searching 16 components exactly runs for many
# minutes (75 s for its calibration alone, on a loaded 2-core machine); the
# child prints a line from the progress callback once the fit is running (in
# Rust, GIL released), and says how it ended.
CTRL_C_CHILD = """
import signal
import sys
import numpy as np
import nof1

# A child started from a background job inherits SIGINT ignored (POSIX:
# without job control, background commands ignore SIGINT), and Python then
# installs no KeyboardInterrupt handler: restore it, so the test is about
# nof1's handling of Ctrl-C, not about how the test run was launched.
signal.signal(signal.SIGINT, signal.default_int_handler)

data = np.random.default_rng(5).normal(size=(400_000, 32))
steps = []

def progress(step, done, total):
    steps.append((step, done, total))
    if len(steps) == 1:
        print("fit running", flush=True)

try:
    nof1.fit(data, index="exact", components=16, progress=progress)
except KeyboardInterrupt:
    # The signal may also land in this callback: fit raises it just the same.
    print("KeyboardInterrupt; last report", steps[-1], flush=True)
    sys.exit(42)
print("fit finished", flush=True)
"""


def test_ctrl_c_interrupts_a_long_fit(tmp_path):
    # The signal is sent once the fit is known to be running, to a child
    # process (never to pytest itself); the child must leave nof1.fit through
    # KeyboardInterrupt, not by finishing it. Every wait has a timeout, so a
    # fit that ignored the signal fails the test instead of hanging it.
    script = tmp_path / "child.py"
    script.write_text(CTRL_C_CHILD)
    child = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = []
        reader = threading.Thread(target=lambda: first.append(child.stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout=300)
        assert first == ["fit running\n"], (first, child.poll())
        child.send_signal(signal.SIGINT)
        out, err = child.communicate(timeout=300)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 42, (child.returncode, out, err)
    assert out.startswith("KeyboardInterrupt; last report"), out
