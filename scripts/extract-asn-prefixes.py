#!/usr/bin/env python3
"""Writes examples/data/k8s-asn-prefixes.dat: the pyasn prefixes of every ASN in the k8s.io vendor files.

Source: Debian python3-pyasn's ipasn6_20151101.dat.gz (IPv4 and IPv6). Run from the repository root.
"""
import glob
import gzip
import re

DUMP = "/usr/lib/python3/dist-packages/data/ipasn6_20151101.dat.gz"
asns = set()
for path in glob.glob("examples/data/k8s.io-asns/*.yaml"):
    for line in open(path):
        match = re.match(r"\s*-\s*(\d+)\s*$", line)
        if match:
            asns.add(int(match.group(1)))
with gzip.open(DUMP, "rt") as dump, open("examples/data/k8s-asn-prefixes.dat", "w") as out:
    out.write("; prefix<TAB>asn for the ASNs listed in k8s.io-asns/*.yaml\n")
    out.write("; extracted from Debian python3-pyasn data/ipasn6_20151101.dat.gz (RIPE RIS rib_v6v4.20151101.0600) by scripts/extract-asn-prefixes.py\n")
    for line in dump:
        if not line.startswith(";") and int(line.rstrip("\n").split("\t")[1]) in asns:
            out.write(line)
