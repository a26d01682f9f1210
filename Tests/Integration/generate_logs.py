#!/usr/bin/env python3
"""Realistic access logs with a known ground truth, for `redirector analyze` tests and benchmarks.

Client addresses are drawn from the real data the example snapshot is built from
(examples/data: AWS ip-ranges.json, GCP cloud.json, the k8s.io ASN prefixes) and, for clients of
no provider, from Debian python3-pyasn's ipasn_20140513.dat.gz. The expected provider and region
of each address come from an independent longest-prefix oracle written here; an address is used
only when that answer does not depend on how the compiler breaks ties (every prefix covering it
names the same provider, and the longest ones the same region, ASN-table prefixes inside the
provider's own ones left out as the ownership rule drops them). The expected decision follows
examples/simple/redirector.yaml: GET/HEAD of /v2/<…> → registry, /binaries/<…> and /releases/<…>
→ artifacts, for providers whose k8s.io file has `redirectsTo` hosts; everything else passes.

Writes, per requested format, `<format>.log` (`combined.log.gz` for combined) and
`truth-<format>.json` with: line and malformed counts, per provider, per region and per unmatched
ASN requests / bytes / redirected requests and bytes / distinct clients, and bytes per provider
per hour. Deterministic for a given --seed.

    PYTHONPATH=Tests/Conformance generate_logs.py --out DIR [--lines N] [--seed S] [--formats combined,envoy,gcs,custom]
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import ipaddress
import json
import random
import re
import sys
from collections import defaultdict
from pathlib import Path

from testkit.data import read_pyasn
from testkit.paths import EXAMPLES, PYASN_DATA

DATA = EXAMPLES / "data"
PYASN = PYASN_DATA / "ipasn_20140513.dat.gz"

# The custom NGINX format the tests pass with --log-format: the common "main" layout with the
# X-Forwarded-For header, written behind a trusted proxy (127.0.0.0/8 in the simple config).
CUSTOM_FORMAT = ('$remote_addr - $remote_user [$time_iso8601] "$request" $status $body_bytes_sent '
                 '"$http_referer" "$http_user_agent" "$http_x_forwarded_for" rt=$request_time')
GCS_HEADER = ["time_micros", "c_ip", "c_ip_type", "c_ip_region", "cs_method", "cs_uri", "sc_status",
              "cs_bytes", "sc_bytes", "time_taken_micros", "cs_host", "cs_referer", "cs_user_agent",
              "s_request_id", "cs_operation", "cs_bucket", "cs_object"]
GCS_BUCKET = "/k8s-artifacts-prod"   # tests pass --strip-path-prefix with it
START = int(dt.datetime(2024, 5, 13, tzinfo=dt.timezone.utc).timestamp())
HOURS = 48


# --------------------------------------------------------------------------- the oracle


class Oracle:
    """Longest-prefix match by exact lookups per prefix length (slow, simple, independent)."""

    def __init__(self):
        self.tables = {4: defaultdict(dict), 6: defaultdict(dict)}

    def add(self, network: ipaddress._BaseNetwork, value):
        table = self.tables[network.version][network.prefixlen]
        table.setdefault(int(network.network_address), set()).add(value)

    def covering(self, address: ipaddress._BaseAddress):
        """[(length, {values})] for every prefix covering `address`, longest first."""
        bits = address.max_prefixlen
        value = int(address)
        out = []
        tables = self.tables[address.version]
        for length in sorted(tables, reverse=True):
            key = value >> (bits - length) << (bits - length) if length else 0
            hit = tables[length].get(key)
            if hit:
                out.append((length, hit))
        return out


def read_owners() -> tuple[dict[int, set[str]], dict[str, dict]]:
    """ASN → provider names, and provider → redirectsTo, from the k8s.io vendor files."""
    owners: dict[int, set[str]] = defaultdict(set)
    targets: dict[str, dict] = {}
    for path in sorted((DATA / "k8s.io-asns").glob("*.yaml")):
        name, section, hosts = None, None, {}
        for raw in path.read_text().splitlines():
            line = raw.split("#", 1)[0].rstrip()
            if not line.strip():
                continue
            if m := re.match(r"^name:\s*(\S+)", line):
                name = m.group(1)
            elif re.match(r"^redirectsTo:", line):
                section = "redirects"
            elif re.match(r"^asns:", line):
                section = "asns"
            elif section == "redirects" and (m := re.match(r"^\s+(registry|artifacts):\s*(\S+)", line)):
                hosts[m.group(1)] = m.group(2)
            elif section == "asns" and (m := re.match(r"^\s*-\s*(\d+)", line)):
                owners[int(m.group(1))].add(name)
        targets[name] = hosts
    return owners, targets


def build_world():
    owners, targets = read_owners()
    oracle = Oracle()
    candidates = defaultdict(list)   # provider → [network]
    aws = json.loads((DATA / "aws-ip-ranges.json").read_text())
    for entry in aws["prefixes"] + aws["ipv6_prefixes"]:
        network = ipaddress.ip_network(entry.get("ip_prefix") or entry["ipv6_prefix"], strict=False)
        oracle.add(network, ("amazon", entry["region"], "own"))
        candidates["amazon"].append(network)
    gcp = json.loads((DATA / "gcp-cloud.json").read_text())
    for entry in gcp["prefixes"]:
        network = ipaddress.ip_network(entry.get("ipv4Prefix") or entry["ipv6Prefix"], strict=False)
        oracle.add(network, ("google", entry.get("scope") or "", "own"))
        candidates["google"].append(network)
    for network, asn in read_pyasn(DATA / "k8s-asn-prefixes.dat"):
        for owner in owners.get(asn, ()):
            oracle.add(network, (owner, "", "asn"))
            candidates[owner].append(network)
    return oracle, candidates, targets


def classify(oracle: Oracle, address):
    """(provider, region) when unambiguous, None when no prefix covers it, 'ambiguous' otherwise."""
    hits = oracle.covering(address)
    if not hits:
        return None
    providers = {provider for _, values in hits for provider, _, _ in values}
    if len(providers) != 1:
        return "ambiguous"
    # The ownership rule drops an ASN-table prefix nested in a prefix of the same provider's own
    # sources: with one provider all round, any own prefix covering the address decides.
    if any(kind == "own" for _, values in hits for _, _, kind in values):
        hits = [(length, {v for v in values if v[2] == "own"}) for length, values in hits]
        hits = [(length, values) for length, values in hits if values]
    answers = {(provider, region) for provider, region, _ in hits[0][1]}
    if len(answers) != 1:
        return "ambiguous"
    return next(iter(answers))


def random_address(rng: random.Random, network):
    size = network.num_addresses
    offset = rng.randrange(size) if size > 1 else 0
    return network.network_address + offset


# --------------------------------------------------------------------------- clients


def pick_clients(rng, oracle, networks, provider, count, version=None, tries=200_000):
    pool, seen = [], set()
    networks = [n for n in networks if version is None or n.version == version]
    for _ in range(tries):
        if len(pool) >= count or not networks:
            break
        address = random_address(rng, rng.choice(networks))
        if address in seen:
            continue
        seen.add(address)
        answer = classify(oracle, address)
        if isinstance(answer, tuple) and answer[0] == provider:
            pool.append((str(address), answer[0], answer[1]))
    return pool


class ASNOracle:
    def __init__(self, entries):
        self.oracle = Oracle()
        self.by_asn = defaultdict(list)
        for network, asn in entries:
            self.oracle.add(network, asn)
            self.by_asn[asn].append(network)

    def asn(self, address) -> int:
        """The origin AS; 0 when no prefix covers the address, -1 when the longest prefix is listed twice."""
        hits = self.oracle.covering(address)
        if not hits:
            return 0
        return next(iter(hits[0][1])) if len(hits[0][1]) == 1 else -1


def pick_unmatched(rng, oracle, asn_oracle, asn, count):
    pool, seen = [], set()
    networks = asn_oracle.by_asn[asn]
    for _ in range(count * 30):
        if len(pool) >= count:
            break
        address = random_address(rng, rng.choice(networks))
        if address in seen or address.is_private or address.is_reserved or address.is_loopback:
            continue
        seen.add(address)
        if classify(oracle, address) is None and asn_oracle.asn(address) > 0:
            pool.append((str(address), "", "", asn_oracle.asn(address)))
    return pool


# --------------------------------------------------------------------------- requests

REPOS = ["kube-apiserver", "kube-proxy", "pause", "coredns/coredns", "etcd", "kube-scheduler",
         "kube-controller-manager", "ingress-nginx/controller", "metrics-server/metrics-server"]
VERSIONS = ["v1.28.9", "v1.29.4", "v1.30.0", "v1.30.1", "3.9", "v1.11.1", "3.5.12-0"]
AGENTS = ["containerd/v1.7.15", "docker/24.0.7 go/go1.20.10 os/linux arch/amd64", "cri-o/1.29.2",
          "curl/8.5.0", "Go-http-client/1.1", "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"]


def make_request(rng: random.Random):
    """(method, target, status, bytes, route class or None)."""
    roll = rng.random()
    repo = rng.choice(REPOS)
    if roll < 0.34:
        digest = "%064x" % rng.getrandbits(256)
        status = 200 if rng.random() < 0.9 else 206
        size = min(int(rng.lognormvariate(15.5, 1.4)), 900_000_000)
        return "GET", f"/v2/{repo}/blobs/sha256:{digest}", status, size, "registry"
    if roll < 0.58:
        tag = rng.choice(VERSIONS)
        if rng.random() < 0.15:
            return "GET", f"/v2/{repo}/manifests/{tag}", 304, 0, "registry"
        return "GET", f"/v2/{repo}/manifests/{tag}", 200, rng.randint(500, 9000), "registry"
    if roll < 0.68:
        return "HEAD", f"/v2/{repo}/manifests/{rng.choice(VERSIONS)}", 200, 0, "registry"
    if roll < 0.76:
        version = rng.choice(VERSIONS[:4])
        tool = rng.choice(["kubectl", "kubeadm", "kubelet"])
        query = "?checksum=sha256" if rng.random() < 0.2 else ""
        return "GET", f"/binaries/kubernetes/{version}/bin/linux/amd64/{tool}{query}", 200, rng.randint(40_000_000, 120_000_000), "artifacts"
    if roll < 0.79:
        return "GET", f"/releases/cri-tools/v1.30.0/crictl-v1.30.0-linux-amd64.tar.gz", 200, rng.randint(15_000_000, 25_000_000), "artifacts"
    if roll < 0.81:
        return "POST", f"/v2/{repo}/blobs/uploads/", 202, 0, None
    if roll < 0.83:
        return "DELETE", f"/v2/{repo}/manifests/latest", 405, 157, None
    if roll < 0.90:
        return "GET", rng.choice(["/", "/robots.txt", "/favicon.ico", "/privacy"]), 200, rng.randint(100, 30_000), None
    if roll < 0.95:
        return "GET", f"/docs/{rng.choice(['install', 'faq', 'mirrors'])}.html?lang=en", 200, rng.randint(2000, 60_000), None
    return "GET", f"/v2/{repo}/tags/list?n=50", 404, rng.randint(90, 200), "registry"


def would_redirect(provider: str, method: str, route: str | None, targets: dict) -> bool:
    return bool(provider) and method in ("GET", "HEAD") and route is not None and bool(targets.get(provider, {}).get(route))


# --------------------------------------------------------------------------- writers


def time_local(t: int, offset_minutes: int = 0) -> str:
    moment = dt.datetime.fromtimestamp(t, dt.timezone(dt.timedelta(minutes=offset_minutes)))
    return moment.strftime("%d/%b/%Y:%H:%M:%S %z")


def time_iso(t: int, offset_minutes: int = 0) -> str:
    moment = dt.datetime.fromtimestamp(t, dt.timezone(dt.timedelta(minutes=offset_minutes)))
    return moment.isoformat()


def write_format(fmt: str, out: Path, requests, extras, rng: random.Random) -> tuple[Path, dict]:
    """Writes one log; returns its path and the malformed counts by reason."""
    malformed: dict[str, int] = defaultdict(int)
    lines: list[str] = []
    bad_every = max(len(requests) // 40, 1)
    if fmt == "gcs":
        lines.append(",".join(f'"{c}"' for c in GCS_HEADER))
    for index, r in enumerate(requests):
        client, method, target, status, size, t = r["client"], r["method"], r["target"], r["status"], r["bytes"], r["time"]
        agent = AGENTS[index % len(AGENTS)]
        if fmt == "combined":
            lines.append(f'{client} - - [{time_local(t)}] "{method} {target} HTTP/1.1" {status} {size} "-" "{agent}"')
        elif fmt == "custom":
            spoof = index % 7 == 0
            chain = f"203.0.113.{index % 250}, {client}" if spoof else client
            if index % 11 == 0:
                chain += ", 127.0.0.9"      # a second trusted hop
            lines.append(f'127.0.0.1 - - [{time_iso(t, -420)}] "{method} {target} HTTP/1.1" {status} {size} '
                         f'"-" "{agent}" "{chain}" rt=0.{index % 1000:03d}')
        elif fmt == "envoy":
            start = dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{index % 1000:03d}Z"
            chain = f"198.51.100.{index % 250}, {client}" if index % 5 == 0 else client
            lines.append(f'[{start}] "{method} {target} HTTP/1.1" {status} - 0 {size} {index % 900} {index % 800} '
                         f'"{chain}" "{agent}" "{rng.getrandbits(64):016x}" "registry.example.org" "10.1.2.3:443"')
        elif fmt == "gcs":
            kind = "2" if ":" in client else "1"
            fields = [str(t * 1_000_000 + index % 1_000_000), client, kind, "", method, GCS_BUCKET + target,
                      str(status), "0", str(size), "12000", "storage.googleapis.com", "", agent,
                      f"{rng.getrandbits(64):016x}", "GET_Object", GCS_BUCKET[1:], target.lstrip("/")]
            lines.append(",".join('"' + f.replace('"', '""') + '"' for f in fields))
        if index % bad_every == bad_every - 1:
            reason, text = bad_line(fmt, index)
            malformed[reason] += 1
            lines.append(text)
    for extra in extras.get(fmt, []):
        lines.append(extra)
    path = out / (f"{fmt}.log.gz" if fmt == "combined" else f"{fmt}.log")
    data = ("\n".join(lines) + "\n").encode()
    if fmt == "combined":
        with gzip.open(path, "wb", compresslevel=6) as handle:
            handle.write(data)
    else:
        path.write_bytes(data)
    return path, dict(malformed)


def bad_line(fmt: str, index: int) -> tuple[str, str]:
    """A malformed line of a known reason, cycling through the reasons the format can show."""
    if fmt in ("combined", "custom"):
        stamp = "13/May/2024:01:02:03 +0000" if fmt == "combined" else "2024-05-13T01:02:03-07:00"
        xff = ' "-" "-" "-" rt=0.1' if fmt == "custom" else ' "-" "-"'
        choices = [
            ("layout", "this is not an access log line"),
            ("layout", f'3.5.140.2 - - [{stamp}] "GET /v2/pause/manifests/3.9 HTT'),
            ("status", f'3.5.140.2 - - [{stamp}] "GET / HTTP/1.1" 2x0 12{xff}'),
            ("bytes", f'3.5.140.2 - - [{stamp}] "GET / HTTP/1.1" 200 12k{xff}'),
            ("time", f'3.5.140.2 - - [{"32/Foo/2024:01:02:03 +0000" if fmt == "combined" else "2024-13-45T01:02:03Z"}] "GET / HTTP/1.1" 200 12{xff}'),
            ("layout", "\x00\x01\x02\xff binary garbage"),
        ]
    elif fmt == "envoy":
        choices = [
            ("layout", "envoy started"),
            ("time", '[yesterday] "GET / HTTP/1.1" 200 - 0 12 1 1 "3.5.140.2" "-" "-" "-" "-"'),
            ("status", '[2024-05-13T01:02:03.000Z] "GET / HTTP/1.1" OK - 0 12 1 1 "3.5.140.2" "-" "-" "-" "-"'),
            ("bytes", '[2024-05-13T01:02:03.000Z] "GET / HTTP/1.1" 200 - 0 -5 1 1 "3.5.140.2" "-" "-" "-" "-"'),
        ]
    else:
        choices = [
            ("columns", '"1715562000000000","3.5.140.2"'),
            ("quoting", '"1715562000000000","3.5.140.2","1","","GET","/unterminated'),
            ("status", '"1715562000000000","3.5.140.2","1","","GET","/x","abc","0","12","1","h","","a","r","o","b","x"'),
        ]
    return choices[index // 7 % len(choices)]


# --------------------------------------------------------------------------- truth


def empty_row():
    return {"requests": 0, "bytes": 0, "redirected_requests": 0, "redirected_bytes": 0, "clients": set()}


def add(row, r):
    row["requests"] += 1
    row["bytes"] += r["bytes"]
    if r["redirect"]:
        row["redirected_requests"] += 1
        row["redirected_bytes"] += r["bytes"]
    if r["client_valid"]:
        row["clients"].add(r["client"])


def truth_for(records, malformed, lines) -> dict:
    providers, regions, asns = defaultdict(empty_row), defaultdict(empty_row), defaultdict(empty_row)
    hourly = defaultdict(lambda: defaultdict(int))
    total = empty_row()
    for r in records:
        add(total, r)
        add(providers[r["provider"]], r)
        if r["provider"]:
            add(regions[f'{r["provider"]}/{r["region"]}'], r)
        else:
            add(asns[str(r["asn"])], r)
        hourly[str(r["time"] // 3600 * 3600)][r["provider"]] += r["bytes"]

    def finish(row):
        out = {k: v for k, v in row.items() if k != "clients"}
        out["distinct_clients"] = len(row["clients"])
        return out

    return {
        "lines": lines,
        "records": len(records),
        "malformed": malformed,
        "invalid_client_addresses": sum(1 for r in records if not r["client_valid"]),
        "total": finish(total),
        "providers": {k: finish(v) for k, v in providers.items()},
        "regions": {k: finish(v) for k, v in regions.items()},
        "unmatched_asns": {k: finish(v) for k, v in asns.items()},
        "hourly": {hour: dict(values) for hour, values in hourly.items()},
    }


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--lines", type=int, default=100_000, help="requests per format (malformed lines come on top)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--formats", default="combined,envoy,gcs,custom")
    parser.add_argument("--pyasn", type=Path, default=PYASN)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    args.out.mkdir(parents=True, exist_ok=True)

    oracle, candidates, targets = build_world()
    asn_oracle = ASNOracle(read_pyasn(args.pyasn))

    # Client populations: (share of requests, pool). Amazon's pool is larger than the exact limit
    # of the distinct counter, so its count is an estimate in the report.
    populations = [
        (0.36, pick_clients(rng, oracle, candidates["amazon"], "amazon", 2400, version=4)),
        (0.03, pick_clients(rng, oracle, candidates["amazon"], "amazon", 120, version=6)),
        (0.20, pick_clients(rng, oracle, candidates["google"], "google", 700, version=4)),
        (0.02, pick_clients(rng, oracle, candidates["google"], "google", 40, version=6)),
        (0.08, pick_clients(rng, oracle, candidates["microsoft"], "microsoft", 300)),
    ]
    for name in ("alibabagroup", "equinixmetal", "tencentcloud", "digitalocean", "baidu"):
        pool = pick_clients(rng, oracle, candidates[name], name, 40)
        if pool:
            populations.append((0.01, pool))
    # Unmatched: a few large networks with Zipf-like traffic, plus a long tail.
    big = sorted((asn for asn, nets in asn_oracle.by_asn.items() if len(nets) >= 400), key=lambda a: -len(asn_oracle.by_asn[a]))
    chosen = rng.sample(big[:200], 24)
    weights = [1 / (rank + 1) ** 0.9 for rank in range(len(chosen))]
    scale = 0.24 / sum(weights)
    for asn, weight in zip(chosen, weights):
        pool = [(a, p, r) for a, p, r, _ in pick_unmatched(rng, oracle, asn_oracle, asn, rng.randint(15, 150))]
        if pool:
            populations.append((weight * scale, pool))
    tail_asns = rng.sample(sorted(asn_oracle.by_asn), 400)
    tail = [(a, p, r) for asn in tail_asns for a, p, r, _ in pick_unmatched(rng, oracle, asn_oracle, asn, 1)]
    populations.append((0.04, tail))

    address_asn = {}
    shares = [share for share, pool in populations if pool]
    pools = [pool for _, pool in populations if pool]
    pool_weights = [[1 / (i + 1) ** 0.7 for i in range(len(pool))] for pool in pools]

    times = sorted(START + int(HOURS * 3600 * (rng.random() ** 1.15)) for _ in range(args.lines))
    requests = []
    for t in times:
        which = rng.choices(range(len(pools)), weights=shares)[0]
        client, provider, region = rng.choices(pools[which], weights=pool_weights[which])[0]
        method, target, status, size, route = make_request(rng)
        if not provider and client not in address_asn:
            address_asn[client] = asn_oracle.asn(ipaddress.ip_address(client))
        requests.append({
            "client": client, "provider": provider, "region": region, "asn": address_asn.get(client, 0),
            "method": method, "target": target, "status": status, "bytes": size, "time": t,
            "redirect": would_redirect(provider, method, route, targets), "client_valid": True,
        })

    # Lines with an unusable client address: analyzed as requests of no provider and unknown ASN.
    invalid = {
        "combined": [("999.1.2.3", "GET", "/v2/pause/manifests/3.9", 200, 1234), ("unix:", "GET", "/", 200, 10)],
        "custom": [],
        "envoy": [("-", "GET", "/v2/pause/blobs/sha256:" + "a" * 64, 200, 4321)],
        "gcs": [("not-an-ip", "GET", "/binaries/kubernetes/v1.30.0/bin/linux/amd64/kubectl", 200, 5555)],
    }
    formats = [f for f in args.formats.split(",") if f]
    for fmt in formats:
        extras, extra_records = {fmt: []}, []
        t = START + 3600
        for client, method, target, status, size in invalid.get(fmt, []):
            if fmt == "combined":
                extras[fmt].append(f'{client} - - [{time_local(t)}] "{method} {target} HTTP/1.1" {status} {size} "-" "-"')
            elif fmt == "envoy":
                extras[fmt].append(f'[2024-05-13T01:00:00.000Z] "{method} {target} HTTP/1.1" {status} - 0 {size} 1 1 "{client}" "-" "-" "-" "-"')
            elif fmt == "gcs":
                extras[fmt].append(",".join(f'"{v}"' for v in [t * 1_000_000, client, "1", "", method, GCS_BUCKET + target, status, 0, size, 1, "h", "", "a", "r", "o", "b", "x"]))
            extra_records.append({"client": client, "provider": "", "region": "", "asn": 0, "method": method,
                                  "target": target, "status": status, "bytes": size, "time": t,
                                  "redirect": False, "client_valid": False})
        path, malformed = write_format(fmt, args.out, requests, extras, rng)
        records = requests + extra_records
        lines = len(records) + sum(malformed.values()) + (1 if fmt == "gcs" else 0)
        truth = truth_for(records, malformed, lines)
        truth["file"] = path.name
        truth["skipped"] = 1 if fmt == "gcs" else 0
        if fmt == "custom":
            truth["log_format"] = CUSTOM_FORMAT
        if fmt == "gcs":
            truth["strip_path_prefix"] = GCS_BUCKET
        (args.out / f"truth-{fmt}.json").write_text(json.dumps(truth, indent=1, sort_keys=True))
        print(f"{path}: {lines} lines, {len(records)} requests, {sum(malformed.values())} malformed", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
