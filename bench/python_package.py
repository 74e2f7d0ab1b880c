#!/usr/bin/env python3
"""The Python package against the CLI on the same files, in the same run.

Run by hand, not by CI (see bench/README.md), in a virtual environment where
`pip install ./python` was done:

    target/release/nof1 bench synth --out /tmp/syn       # 200,000 x 96 + 20,000 patients
    python bench/python_package.py --dir /tmp/syn --nof1 target/release/nof1 --repeat 2

Each measurement runs in its own process (this script re-invokes itself), so
its peak resident memory is its own. For the package, the tables are read
with pandas first (not timed: the point is "from memory"), the kernel's
high-water mark is reset (/proc/self/clear_refs), then the call is timed; the
peak printed is VmHWM minus the resident size before the call, i.e. what fit
or assess adds to the caller's data. For the CLI, wall time and ru_maxrss of
`nof1 fit` and `nof1 assess` (which also parse the CSV files).
"""

import argparse
import json
import os
import subprocess
import sys
import time


def vm(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def reset_hwm():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def phase(args):
    import numpy as np
    import pandas as pd

    import nof1

    d = args.dir
    out = {}
    if args.phase == "fit":
        X = pd.read_csv(f"{d}/reference.csv")
        X = np.ascontiguousarray(X.drop(columns=[X.columns[0]]).to_numpy(np.float64))
        out["array_mib"] = X.nbytes / 2**20
        base = vm("VmRSS")
        reset_hwm()
        t = time.perf_counter()
        model = nof1.fit(X)
        out["fit_s"] = time.perf_counter() - t
        out["fit_extra_mib"] = (vm("VmHWM") - base) / 2**20
        model.save(f"{d}/py.nof1")
    else:
        P = pd.read_csv(f"{d}/patients.csv")
        ids = P.columns[0]
        P = P.drop(columns=["truth"]).set_index(ids)
        data = P if args.phase == "assess-frame" else np.ascontiguousarray(P.to_numpy(np.float64))
        base = vm("VmRSS")
        reset_hwm()
        t = time.perf_counter()
        model = nof1.load(f"{d}/cli.nof1")
        out["load_s"] = time.perf_counter() - t
        t = time.perf_counter()
        result = model.assess(data)
        out["assess_s"] = time.perf_counter() - t
        out["total_s"] = out["load_s"] + out["assess_s"]
        out["extra_mib"] = (vm("VmHWM") - base) / 2**20
        out["rows"] = len(result)
    print(json.dumps(out))


def child(*argv):
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.dup2(w, 1)
        os.execv(argv[0], list(argv))
    os.close(w)
    t = time.perf_counter()
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - t
    text = os.read(r, 1 << 20).decode()
    os.close(r)
    if status != 0:
        sys.exit(f"{argv} failed")
    return wall, usage.ru_maxrss / 1024, text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", required=True)
    ap.add_argument("--nof1", default="target/release/nof1")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--phase", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        return phase(args)
    d = args.dir
    me = [sys.executable, os.path.abspath(__file__), "--dir", d]
    for i in range(args.repeat):
        wall, rss, _ = child(args.nof1, "--quiet", "fit", "--reference", f"{d}/reference.csv",
                             "--out", f"{d}/cli.nof1")
        print(f"[{i}] CLI fit (reads the CSV)      wall {wall:6.2f} s  peak RSS {rss:7.0f} MiB")
        _, rss, text = child(*me, "--phase", "fit")
        r = json.loads(text)
        print(f"[{i}] Python fit (numpy in memory) wall {r['fit_s']:6.2f} s  "
              f"peak RSS {rss:7.0f} MiB  (array {r['array_mib']:.0f} MiB; fit adds {r['fit_extra_mib']:.0f} MiB)")
        wall, rss, _ = child(args.nof1, "--quiet", "assess", "--model", f"{d}/cli.nof1", "--input",
                             f"{d}/patients.csv", "--exclude", "truth", "--out", f"{d}/cli-out.csv")
        print(f"[{i}] CLI assess (load, read, write) wall {wall:6.2f} s  peak RSS {rss:7.0f} MiB")
        for what in ("assess-numpy", "assess-frame"):
            _, rss, text = child(*me, "--phase", what)
            r = json.loads(text)
            print(f"[{i}] Python {what:<12} load {r['load_s']:.2f} s + assess {r['assess_s']:.2f} s "
                  f"= {r['total_s']:.2f} s  peak RSS {rss:7.0f} MiB (adds {r['extra_mib']:.0f} MiB)")


if __name__ == "__main__":
    main()
