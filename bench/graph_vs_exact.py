#!/usr/bin/env python3
"""Compares two `nof1 assess --out X.jsonl` outputs of the same patients:
one from a graph model (`--index graph`, or `auto` where it chose the graph)
and one from an exact model (`--index exact`), both fitted on the same
reference with the same parameters.

Prints, for all patients and split by the `truth` column of the patients
file (`in` / `out`, as `nof1 bench synth` writes it):
  - recall@k of the graph's neighbours against the exact ones (a graph
    neighbour counts when its distance is at most the exact k-th distance,
    so ties at the k-th distance count, as `IndexCheck` does);
  - the share of patients with the same verdict, and each model's share of
    `invisible` verdicts;
  - the largest and median absolute p-value difference.

Usage:
    python3 bench/graph_vs_exact.py GRAPH.jsonl EXACT.jsonl PATIENTS.csv
"""
import csv
import json
import statistics
import sys


def read(path):
    out = {}
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            out[r["id"]] = r
    return out


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    graph, exact = read(sys.argv[1]), read(sys.argv[2])
    truth = {}
    with open(sys.argv[3]) as f:
        reader = csv.DictReader(f)
        id_col = reader.fieldnames[0]
        for row in reader:
            truth[row[id_col]] = row.get("truth", "")
    groups = {"all": list(exact)}
    for t in ("in", "out"):
        ids = [i for i in exact if truth.get(i) == t]
        if ids:
            groups[t] = ids
    print(f"{'patients':>8} {'n':>6} {'recall@k':>9} {'same verdict':>13} "
          f"{'invisible graph':>16} {'invisible exact':>16} {'max |dp|':>9} {'median |dp|':>12}")
    for name, ids in groups.items():
        hits = total = same = inv_g = inv_e = 0
        dps = []
        for i in ids:
            g, e = graph[i], exact[i]
            en = e.get("neighbours") or []
            gn = g.get("neighbours") or []
            if en:
                kth = en[-1]["distance"]
                hits += min(len(en), sum(1 for n in gn if n["distance"] <= kth * (1 + 1e-6)))
                total += len(en)
            same += g["verdict"] == e["verdict"]
            inv_g += g["verdict"] == "invisible"
            inv_e += e["verdict"] == "invisible"
            if g["p_value"] is not None and e["p_value"] is not None:
                dps.append(abs(g["p_value"] - e["p_value"]))
        n = len(ids)
        recall = hits / total if total else float("nan")
        print(f"{name:>8} {n:>6} {recall:>9.4f} {same / n:>13.4f} {inv_g / n:>16.4f} "
              f"{inv_e / n:>16.4f} {max(dps):>9.4f} {statistics.median(dps):>12.4f}")


if __name__ == "__main__":
    main()
