#!/usr/bin/env python3
"""Soak: PROCS concurrent `nof1 assess` processes over one model, N patients in
total, against one run on the whole file.

    python3 bench/soak.py [--patients 1000000] [--procs 10] [--nof1 target/release/nof1]

Fits the small fixture reference, writes N deterministic patients (a tenth of
them far from the reference, some with missing cells), splits them into PROCS
shards, runs the PROCS `assess` processes at once, then one `assess` on the
whole file. Checks: every process exits 0 with nothing on stderr, and the shard
outputs concatenated without repeated headers equal the single run byte for
byte. Reports wall time and peak RSS (ru_maxrss from wait4) of every process.
Exits 1 on any failure. Python standard library only.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def run_all(cmds):
    """Starts every command at once; returns [(rc, stderr, maxrss_kb)], wall s."""
    start = time.monotonic()
    procs = []
    for cmd in cmds:
        err = tempfile.TemporaryFile()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        procs.append((p, err))
    results = {}
    pending = {p.pid: (p, err) for p, err in procs}
    while pending:
        pid, status, usage = os.wait4(-1, 0)
        if pid not in pending:
            continue
        p, err = pending.pop(pid)
        p.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        results[pid] = (p.returncode, err.read().decode(errors="replace"), usage.ru_maxrss)
    wall = time.monotonic() - start
    return [results[p.pid] for p, _ in procs], wall


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patients", type=int, default=1_000_000)
    ap.add_argument("--procs", type=int, default=10)
    ap.add_argument("--nof1", default=os.path.join(ROOT, "target/release/nof1"))
    ap.add_argument("--keep", help="work directory to keep (default: a temporary one)")
    a = ap.parse_args()
    work = a.keep or tempfile.mkdtemp(prefix="nof1-soak-")
    os.makedirs(work, exist_ok=True)
    model = os.path.join(work, "m.nof1")
    subprocess.run([a.nof1, "fit", "-q", "--reference",
                    os.path.join(ROOT, "fixtures/small/reference.csv"), "--out", model], check=True)
    whole = os.path.join(work, "all.csv")
    per = -(-a.patients // a.procs)
    header = "id,f1,f2,f3,f4,f5\n"
    shards = []
    with open(whole, "w") as f:
        f.write(header)
        shard = None
        for i in range(a.patients):
            if i % per == 0:
                if shard:
                    shard.close()
                shards.append(os.path.join(work, f"shard{len(shards):02}.csv"))
                shard = open(shards[-1], "w")
                shard.write(header)
            # Deterministic: a quasi-random walk around the reference (~10),
            # every 10th patient far away, every 97th with missing cells.
            x = ((i * 2654435761) % 1000003) / 1000003.0 - 0.5
            far = 12.0 if i % 10 == 0 else 0.0
            cells = [10 + 3 * x + far, 10 - 2 * x, 10 + x * x, 9.5 + far, 10 + x]
            row = ",".join("NA" if (i % 97 == 0 and j % 2 == 0) else f"{v:.4f}" for j, v in enumerate(cells))
            line = f"p{i},{row}\n"
            f.write(line)
            shard.write(line)
        shard.close()
    outs = [s.replace(".csv", ".out.csv") for s in shards]
    cmds = [[a.nof1, "assess", "-q", "--threads", "1", "--model", model, "--input", s, "--out", o]
            for s, o in zip(shards, outs)]
    conc, wall_conc = run_all(cmds)
    single_out = os.path.join(work, "single.out.csv")
    single, wall_single = run_all([[a.nof1, "assess", "-q", "--model", model, "--input", whole,
                                    "--out", single_out]])
    failures = [(i, rc, err) for i, (rc, err, _) in enumerate(conc + single) if rc != 0 or err]
    with open(single_out, "rb") as f:
        want = f.read()
    got = bytearray()
    for i, o in enumerate(outs):
        with open(o, "rb") as f:
            data = f.read()
        got += data if i == 0 else data.split(b"\n", 1)[1]
    identical = bytes(got) == want
    rows = want.count(b"\n") - 1
    peaks = [r[2] for r in conc]
    print(f"patients            {a.patients} ({rows} output rows)")
    print(f"processes           {a.procs} concurrent, {per} patients each, --threads 1")
    print(f"errors              {len(failures)}")
    print(f"identical to single {'yes' if identical else 'NO'}")
    print(f"wall                concurrent {wall_conc:.1f} s; single run {wall_single:.1f} s")
    print(f"peak RSS            per process max {max(peaks) / 1024:.1f} MB, "
          f"min {min(peaks) / 1024:.1f} MB, sum {sum(peaks) / 1024:.1f} MB; "
          f"single run {single[0][2] / 1024:.1f} MB")
    for i, rc, err in failures:
        print(f"process {i}: exit {rc}: {err.strip()[:300]}", file=sys.stderr)
    if not a.keep:
        import shutil
        shutil.rmtree(work)
    return 0 if identical and not failures and rows == a.patients else 1


if __name__ == "__main__":
    sys.exit(main())
