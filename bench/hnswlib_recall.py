#!/usr/bin/env python3
"""recall@k of the Python stack's hnswlib index, built exactly as
bench/compare_python.py builds it (standardise, PCA(n_components=N,
svd_solver="auto", random_state=1), float32, M=16, ef_construction=200,
random_seed=1, ef=50, 2 threads), against exact (brute-force) kNN in the same
embedding: for the patients split by truth (in/out), and for a seeded sample
of reference members queried for their k nearest *other* members as the
calibration stage does.

With --ef E1,E2,... it also searches the patients at each of those beams and
prints, for each, recall@k of the in and out patients and the wall time of
the knn_query call (all patients, --threads threads): what hnswlib's own
search costs at the recall nof1 is held to."""
import argparse, time, numpy as np, pandas as pd, hnswlib
from sklearn.decomposition import PCA

ap = argparse.ArgumentParser()
ap.add_argument("--reference"); ap.add_argument("--patients")
ap.add_argument("--components", type=int); ap.add_argument("--k", type=int, default=10)
ap.add_argument("--threads", type=int, default=2); ap.add_argument("--members", type=int, default=2000)
ap.add_argument("--ef", default="", help="comma-separated beams to sweep on the patients (optional)")
a = ap.parse_args()

x = pd.read_csv(a.reference, index_col=0).to_numpy(dtype=np.float64)
mean = x.mean(axis=0); sd = x.std(axis=0, ddof=1); sd[sd == 0] = 1.0
z = (x - mean) / sd; del x
p = PCA(n_components=a.components, svd_solver="auto", random_state=1)
y = p.fit_transform(z).astype(np.float32); del z
t0 = time.perf_counter()
index = hnswlib.Index(space="l2", dim=y.shape[1])
index.init_index(max_elements=y.shape[0], M=16, ef_construction=200, random_seed=1)
index.set_num_threads(a.threads); index.add_items(y, np.arange(y.shape[0])); index.set_ef(50)
build = time.perf_counter() - t0

df = pd.read_csv(a.patients, index_col=0)
truth = df["truth"].to_numpy()
xp = df.drop(columns=["truth"]).to_numpy(dtype=np.float64)
q = (((xp - mean) / sd - p.mean_) @ p.components_.T).astype(np.float32)

y64t = np.ascontiguousarray(y.astype(np.float64).T)
yy = (y64t ** 2).sum(axis=0)
def exact(qs, k, chunk):
    out = np.empty((len(qs), k), dtype=np.int64)
    for s in range(0, len(qs), chunk):
        qc = qs[s:s + chunk].astype(np.float64)
        d2 = yy[None, :] - 2.0 * (qc @ y64t)
        part = np.argpartition(d2, k - 1, axis=1)[:, :k]
        out[s:s + chunk] = part
    return out

chunk = max(50, int(1e8 // y.shape[0]))
t0 = time.perf_counter()
ex = exact(q, a.k, chunk)
lab, _ = index.knn_query(q, k=a.k)
rec = np.array([len(set(lab[i]) & set(ex[i])) / a.k for i in range(len(q))])
out = truth == "out"

rng = np.random.default_rng(1)
rows = rng.choice(y.shape[0], size=a.members, replace=False)
exm = exact(y[rows], a.k + 1, chunk)
labm, _ = index.knn_query(y[rows], k=a.k + 1)
recm = np.array([len((set(labm[i]) - {rows[i]}) & (set(exm[i]) - {rows[i]})) / a.k for i in range(len(rows))])
print(f"hnswlib recall@{a.k} (M=16, ef_construction=200, ef=50), {y.shape[0]} members x {y.shape[1]} components: "
      f"in patients {rec[~out].mean():.4f} (min {rec[~out].min():.1f}), out patients {rec[out].mean():.4f} (min {rec[out].min():.1f}), "
      f"{a.members} members (self excluded) {recm.mean():.4f}; build {build:.1f} s wall; exact check {time.perf_counter()-t0:.1f} s")

for ef in [int(e) for e in a.ef.split(",") if e]:
    index.set_ef(ef)
    t0 = time.perf_counter()
    lab, _ = index.knn_query(q, k=a.k)
    took = time.perf_counter() - t0
    rec = np.array([len(set(lab[i]) & set(ex[i])) / a.k for i in range(len(q))])
    print(f"  ef {ef:4d}: recall@{a.k} in {rec[~out].mean():.4f} out {rec[out].mean():.4f}; "
          f"knn_query of {len(q)} patients {took:.3f} s wall ({len(q) / took:,.0f}/s)")
