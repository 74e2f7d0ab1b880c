#!/usr/bin/env python3
"""Writes a synthetic VCF for the reader benchmark (docs/performance.md).

usage: make_vcf.py OUT.vcf [--samples 2504] [--variants 100000] [--seed 1]

Phased biallelic GT calls, one record per variant on chromosomes 1-22. Each
record's calls are one of 256 seeded random rows (allele frequencies 0.05 to
0.5), so the file is written quickly; the reader's work per byte is that of a
real file. Nothing is committed: the file is about 1 GB for the default size.
"""
import argparse
import random

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--samples", type=int, default=2504)
p.add_argument("--variants", type=int, default=100_000)
p.add_argument("--seed", type=int, default=1)
a = p.parse_args()
rng = random.Random(a.seed)
calls = ["0|0", "0|1", "1|0", "1|1"]
pool = []
for _ in range(256):
    f = rng.uniform(0.05, 0.5)
    row = []
    for _ in range(a.samples):
        x = (rng.random() < f) + 2 * (rng.random() < f)
        row.append(calls[x])
    pool.append("\t".join(row))
with open(a.out, "w") as out:
    out.write("##fileformat=VCFv4.2\n")
    out.write('##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">\n')
    for c in range(1, 23):
        out.write(f"##contig=<ID={c}>\n")
    names = "\t".join(f"S{i:05d}" for i in range(a.samples))
    out.write(f"#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{names}\n")
    per = a.variants // 22 + 1
    for v in range(a.variants):
        chrom = v // per + 1
        pos = 1000 + (v % per) * 100
        ref, alt = rng.sample("ACGT", 2)
        out.write(f"{chrom}\t{pos}\trs{v + 1}\t{ref}\t{alt}\t.\tPASS\t.\tGT\t{pool[rng.randrange(256)]}\n")
