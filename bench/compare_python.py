#!/usr/bin/env python3
"""The same work as `nof1 fit` + `nof1 assess`, the way a user would write it
with pandas + scikit-learn + hnswlib, timed per stage; and, if asked, the
nof1 binary on the same files, with the ratio per stage.

Run by hand, not by CI (see bench/README.md):

    pip install pandas scikit-learn hnswlib
    target/release/nof1 bench synth --out /tmp/syn        # reference.csv, patients.csv
    python3 bench/compare_python.py --reference /tmp/syn/reference.csv \
        --patients /tmp/syn/patients.csv --nof1 target/release/nof1

Fit and assess each run in their own process (this script re-invokes itself),
so each phase's peak resident memory is its own (ru_maxrss of that child,
from os.wait4). Inside a phase, each stage's peak is measured by resetting
the kernel's high-water mark (/proc/self/clear_refs) before the stage and
reading VmHWM after it; the figure includes what earlier stages still hold.

The Python pipeline ("simple version" of what nof1 does):
  fit:    read CSV (pandas) -> standardise (mean/sd) -> PCA (scikit-learn,
          --variance or --components) -> hnswlib index (M, ef_construction)
          -> calibration: k-th neighbour distance of a seeded subset of
          reference members (self excluded; no cross-fitting) and their PCA
          residuals -> save
  assess: load -> read patients -> standardise, project, residual -> kNN
          query -> empirical p-values -> write CSV
With --same-outputs the stack also computes what nof1 reports beyond the
verdict: fit finds every member's k-distance and local reachability density
(one more hnswlib query per member), and assess queries the 100 nearest
members (ef >= 100) to count support within the calibrated radius and
compute the LOF density from the k nearest.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def rss_mib():
    """(VmHWM, VmRSS) in MiB from /proc/self/status, or (None, None)."""
    try:
        with open("/proc/self/status") as f:
            status = f.read()
    except OSError:
        return None, None
    out = {}
    for line in status.splitlines():
        if line.startswith(("VmHWM:", "VmRSS:")):
            key, value = line.split(":", 1)
            out[key] = int(value.split()[0]) / 1024.0
    return out.get("VmHWM"), out.get("VmRSS")


def peak_of_process(stages):
    """Peak RSS of this process in MiB: the largest stage peak, or ru_maxrss
    (KiB on Linux, bytes on macOS) where that is larger. Resetting the
    high-water mark also resets what ru_maxrss reports, hence the stage peaks."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = peak / 1048576.0 if sys.platform == "darwin" else peak / 1024.0
    return max([peak] + [r["peak_mib"] for r in stages.rows if r["peak_mib"] is not None])


def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class Stages:
    def __init__(self):
        self.rows = []

    def run(self, name, fn):
        reset_peak()
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        peak, now = rss_mib()
        self.rows.append({"stage": name, "seconds": seconds, "cpu_s": cpu,
                          "peak_mib": peak, "rss_mib": now})
        return out


# nof1's cap on the support count (src/index/exact.rs).
SUPPORT_CAP = 100


def phase_fit(args):
    import numpy as np
    import pandas as pd
    import hnswlib
    from sklearn.decomposition import PCA

    st = Stages()
    df = st.run("read reference", lambda: pd.read_csv(args.reference, index_col=0))
    x = st.run("to numpy", lambda: df.to_numpy(dtype=np.float64))
    del df

    def standardise():
        mean = x.mean(axis=0)
        sd = x.std(axis=0, ddof=1)
        sd[sd == 0] = 1.0
        return mean, sd, (x - mean) / sd

    mean, sd, z = st.run("standardise", standardise)

    def pca():
        n_comp = args.components if args.components else args.variance
        p = PCA(n_components=n_comp, svd_solver="full" if not args.components else "auto",
                random_state=args.seed)
        y = p.fit_transform(z).astype(np.float32)
        return p, y

    p, y = st.run("PCA", pca)

    def build():
        index = hnswlib.Index(space="l2", dim=y.shape[1])
        index.init_index(max_elements=y.shape[0], M=args.M,
                         ef_construction=args.ef_construction, random_seed=args.seed)
        index.set_num_threads(args.threads)
        index.add_items(y, np.arange(y.shape[0]))
        index.set_ef(args.ef)
        return index

    index = st.run("build hnswlib index", build)

    def calibrate():
        rng = np.random.default_rng(args.seed)
        m = min(args.calibration_size, y.shape[0])
        rows = rng.choice(y.shape[0], size=m, replace=False)
        labels, d2 = index.knn_query(y[rows], k=args.k + 1)
        # drop self (distance 0) and take the k-th neighbour distance
        kth = np.sqrt(d2[:, args.k])
        recon = (y[rows].astype(np.float64) @ p.components_)
        res = ((z[rows] - recon) ** 2).sum(axis=1)
        return np.sort(kth), np.sort(res)

    cal_knn, cal_res = st.run("calibration scores", calibrate)

    extra = {}
    if args.same_outputs:
        def member_densities():
            # Every member's k nearest other members (self is the first hit):
            # k-distance and local reachability density, as nof1 fit does.
            labels, d2 = index.knn_query(y, k=args.k + 1)
            nb, dist = labels[:, 1:], np.sqrt(d2[:, 1:])
            kdist = dist[:, -1]
            lrd = 1.0 / np.maximum(np.maximum(kdist[nb], dist).mean(axis=1), 1e-9)
            # kNN distance at the invisible level: the support radius.
            radius = np.quantile(cal_knn, 1.0 - args.alpha)
            return {"kdist": kdist, "lrd": lrd, "radius": np.array([radius])}

        extra = st.run("member densities", member_densities)

    def save():
        d = args.model_dir
        np.savez(os.path.join(d, "model.npz"), mean=mean, sd=sd, components=p.components_,
                 pca_mean=p.mean_, cal_knn=cal_knn, cal_res=cal_res, **extra)
        index.save_index(os.path.join(d, "index.bin"))

    st.run("save", save)
    return {"stages": st.rows, "n_components": int(y.shape[1]), "n": int(y.shape[0]),
            "process_peak_mib": peak_of_process(st)}


def phase_assess(args):
    import numpy as np
    import pandas as pd
    import hnswlib

    st = Stages()

    def load():
        m = np.load(os.path.join(args.model_dir, "model.npz"))
        dim = m["components"].shape[0]
        index = hnswlib.Index(space="l2", dim=dim)
        index.load_index(os.path.join(args.model_dir, "index.bin"))
        index.set_ef(args.ef)
        index.set_num_threads(args.threads)
        return {k: m[k] for k in m.files}, index

    m, index = st.run("load model", load)
    df = st.run("read patients", lambda: pd.read_csv(args.patients, index_col=0))

    def assess():
        truth = df["truth"].to_numpy() if "truth" in df.columns else None
        x = df.drop(columns=["truth"], errors="ignore").to_numpy(dtype=np.float64)
        z = (x - m["mean"]) / m["sd"]
        zc = z - m["pca_mean"]
        y = (zc @ m["components"].T).astype(np.float32)
        res = ((zc - y.astype(np.float64) @ m["components"]) ** 2).sum(axis=1)
        columns = {}
        if args.same_outputs:
            # support: members within the radius among the nearest
            # SUPPORT_CAP (hnswlib has no radius query); density from the
            # k nearest, as nof1 reports them.
            k_s = max(args.k, SUPPORT_CAP)
            index.set_ef(max(args.ef, k_s))
            labels, d2 = index.knn_query(y, k=k_s)
            dist = np.sqrt(d2)
            columns["support"] = (dist <= m["radius"][0]).sum(axis=1)
            nb, dist_k = labels[:, :args.k], dist[:, :args.k]
            lrd_x = 1.0 / np.maximum(np.maximum(m["kdist"][nb], dist_k).mean(axis=1), 1e-9)
            columns["density"] = lrd_x / m["lrd"][nb].mean(axis=1)
            d2 = d2[:, :args.k]
        else:
            _, d2 = index.knn_query(y, k=args.k)
        kth = np.sqrt(d2[:, -1])
        n_k, n_r = len(m["cal_knn"]), len(m["cal_res"])
        p_k = (n_k - np.searchsorted(m["cal_knn"], kth, side="left") + 1) / (n_k + 1)
        p_r = (n_r - np.searchsorted(m["cal_res"], res, side="left") + 1) / (n_r + 1)
        p = np.minimum(1.0, 2.0 * np.minimum(p_k, p_r))
        verdict = np.where(p <= args.alpha, "invisible",
                           np.where(p <= 0.2, "low_support", "supported"))
        out = pd.DataFrame({"id": df.index, "verdict": verdict, "p_value": p,
                            "knn_distance": kth, "residual": res, **columns})
        out.to_csv(args.output, index=False)
        return verdict, truth

    verdict, truth = st.run("assess + write", assess)
    extra = {}
    if truth is not None:
        out = truth == "out"
        extra = {"out_invisible": float((verdict[out] == "invisible").mean()) if out.any() else None,
                 "in_invisible": float((verdict[~out] == "invisible").mean()) if (~out).any() else None}
    return {"stages": st.rows, "n_patients": int(len(verdict)),
            "process_peak_mib": peak_of_process(st), **extra}


def run_child(cmd, env=None):
    """Runs cmd; returns (wall seconds, peak RSS MiB of that child, stdout)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"compare_python: {' '.join(cmd)} failed with exit code {proc.returncode}")
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    scale = 1.0 / 1024.0 if sys.platform != "darwin" else 1.0 / 1048576.0
    return seconds, usage.ru_maxrss * scale, out


def fmt(x, spec):
    """Formats x with spec, or a dash of the same width when x is None."""
    if x is None:
        width = spec.lstrip("<>^").split(".")[0].rstrip("fd")
        return format("-", ">" + width) if width else "-"
    return format(x, spec)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reference", required=True)
    ap.add_argument("--patients", required=True)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--variance", type=float, default=0.95, help="PCA variance fraction (default 0.95)")
    ap.add_argument("--components", type=int, default=None, help="fixed number of PCA components")
    ap.add_argument("--M", type=int, default=16, help="hnswlib M (default 16)")
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--ef", type=int, default=50, help="hnswlib query ef (default 50)")
    ap.add_argument("--calibration-size", type=int, default=20000)
    ap.add_argument("--same-outputs", action="store_true",
                    help="also compute what nof1 reports beyond verdict and p-value: support "
                         "(members within the calibrated radius, up to 100) and LOF density")
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--nof1", default=None, help="path of the nof1 binary: also time `nof1 fit` and `nof1 assess`")
    ap.add_argument("--nof1-args", default="", help="extra arguments for `nof1 fit` (e.g. '--index exact')")
    ap.add_argument("--nof1-fit", type=float, default=None, help="nof1 fit seconds measured elsewhere")
    ap.add_argument("--nof1-assess", type=float, default=None, help="nof1 assess seconds measured elsewhere")
    ap.add_argument("--json", default=None, help="also write all figures to this JSON file")
    ap.add_argument("--phase", choices=["fit", "assess"], help=argparse.SUPPRESS)
    ap.add_argument("--model-dir", help=argparse.SUPPRESS)
    ap.add_argument("--output", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.phase:
        # Child process: limit BLAS/OpenMP threads like nof1's --threads.
        result = phase_fit(args) if args.phase == "fit" else phase_assess(args)
        json.dump(result, sys.stdout)
        return

    env = dict(os.environ)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = str(args.threads)
    me = [sys.executable, os.path.abspath(__file__)] + sys.argv[1:]
    with tempfile.TemporaryDirectory(prefix="nof1-compare-") as tmp:
        py_fit = run_child(me + ["--phase", "fit", "--model-dir", tmp], env)
        py_assess = run_child(me + ["--phase", "assess", "--model-dir", tmp,
                                    "--output", os.path.join(tmp, "py.csv")], env)
        nof1_fit = nof1_assess = None
        if args.nof1:
            model = os.path.join(tmp, "nof1.model")
            fit_cmd = [args.nof1, "--quiet", "--threads", str(args.threads), "fit",
                       "--reference", args.reference, "--out", model, "--k", str(args.k),
                       "--seed", str(args.seed)] + args.nof1_args.split()
            nof1_fit = run_child(fit_cmd)
            assess_cmd = [args.nof1, "--quiet", "--threads", str(args.threads), "assess",
                          "--model", model, "--input", args.patients, "--exclude", "truth",
                          "--out", os.path.join(tmp, "nof1.csv")]
            nof1_assess = run_child(assess_cmd)

    fit = json.loads(py_fit[2])
    assess = json.loads(py_assess[2])
    # The children reset their high-water mark per stage, which ru_maxrss from
    # wait4 then misses: use the children's own account.
    py_fit = (py_fit[0], fit["process_peak_mib"])
    py_assess = (py_assess[0], assess["process_peak_mib"])
    print(f"python stack: pandas {version('pandas')}, scikit-learn {version('scikit-learn')}, "
          f"hnswlib {version('hnswlib')}; {args.threads} thread(s); reference {fit['n']} rows -> "
          f"{fit['n_components']} components; {assess['n_patients']} patients")
    print(f"{'stage':<28} {'seconds':>9} {'CPU s':>8} {'peak MiB':>10} {'RSS after':>10}")
    for phase, res in (("fit", fit), ("assess", assess)):
        for r in res["stages"]:
            print(f"{phase + ': ' + r['stage']:<28} {r['seconds']:>9.2f} {r['cpu_s']:>8.2f} "
                  f"{fmt(r['peak_mib'], '>10.0f')} {fmt(r['rss_mib'], '>10.0f')}")
    if "out_invisible" in assess:
        print(f"python verdicts vs truth: out -> invisible {fmt(assess['out_invisible'], '.3f')}, "
              f"in -> invisible {fmt(assess['in_invisible'], '.4f')}")
    print()
    print(f"{'process (wall incl. start-up)':<30} {'python s':>9} {'peak MiB':>9} "
          f"{'nof1 s':>8} {'peak MiB':>9} {'speed-up':>9} {'memory':>7}")
    n_patients = assess["n_patients"]
    rows = [("fit", py_fit, nof1_fit, args.nof1_fit),
            ("assess", py_assess, nof1_assess, args.nof1_assess)]
    summary = {"python": {"fit": fit, "assess": assess}}
    for name, py, nf, given in rows:
        nf_s = nf[0] if nf else given
        nf_mem = nf[1] if nf else None
        ratio = py[0] / nf_s if nf_s else None
        mem = nf_mem / py[1] if nf_mem else None
        print(f"{name:<30} {py[0]:>9.2f} {py[1]:>9.0f} {fmt(nf_s, '>8.2f')} {fmt(nf_mem, '>9.0f')} "
              f"{fmt(ratio, '>8.1f')}x {fmt(mem, '>6.2f')}x")
        summary[name] = {"python_s": py[0], "python_peak_mib": py[1], "nof1_s": nf_s,
                         "nof1_peak_mib": nf_mem, "speedup": ratio}
    print(f"python assess: {n_patients / py_assess[0]:.0f} patients/s (incl. start-up and load)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)


def version(package):
    try:
        from importlib.metadata import version as v
        return v(package)
    except Exception:  # noqa: BLE001 - only for the banner
        return "?"


if __name__ == "__main__":
    main()
