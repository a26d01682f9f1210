"""`redirector analyze` against generated logs with a known ground truth, and
`redirector export prefixes --format csv-ranges` against the CLI's own lookups.

The logs come from generate_logs.py: clients drawn from the real AWS/GCP ranges and the Debian
pyasn table, expected providers from an independent longest-prefix oracle, expected decisions
from the example policy. Every format (NGINX combined and a custom log_format, Envoy's default,
GCS usage CSV) must give the same answer.
"""

from __future__ import annotations

import bisect
import ipaddress
import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

from testkit import snapshots
from testkit.paths import EXAMPLES, PYASN_DATA, REPO
from testkit.processes import python_env, run

GENERATOR = Path(__file__).with_name("generate_logs.py")
PYASN = PYASN_DATA / "ipasn_20140513.dat.gz"
DOCS = REPO / "docs" / "analysis.md"
LINES = 30_000
FORMATS = ["combined", "envoy", "gcs", "custom"]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def simple_snapshot(cli, tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("analyze-snapshot")
    out = directory / "simple.rdb"
    # generate_logs.py works its ground truth out from the committed data.
    run([cli, "compile", "-c", snapshots.committed_simple_config(directory), "-o", out])
    return out


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    if not PYASN.exists():
        pytest.skip(f"{PYASN} missing (Debian python3-pyasn)")
    out = tmp_path_factory.mktemp("analyze-logs")
    run([sys.executable, GENERATOR, "--out", out, "--lines", LINES, "--seed", "11"], timeout=600, env=python_env())
    return out


def analyze(cli, snapshot, generated: Path, fmt: str, *extra, inputs=None, stdin=None, check=True):
    """Runs analyze with the options the truth file asks for; returns (JSON report, process)."""
    truth = json.loads((generated / f"truth-{fmt}.json").read_text())
    out = generated / f"report-{fmt}.json"
    cmd = [cli, "analyze", "-s", snapshot, "--format", fmt, "--asn-table", PYASN, "--json", out, "--no-progress"]
    if "log_format" in truth:
        cmd += ["--log-format", truth["log_format"]]
    if "strip_path_prefix" in truth:
        cmd += ["--strip-path-prefix", truth["strip_path_prefix"]]
    cmd += list(extra)
    cmd += inputs if inputs is not None else [generated / truth["file"]]
    proc = subprocess.run([str(c) for c in cmd], input=stdin, capture_output=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr.decode()
    return (json.loads(out.read_text()) if out.exists() and proc.returncode == 0 else None), proc


def assert_distinct(actual_row: dict, expected: int, what: str):
    if actual_row["distinct_clients_exact"]:
        assert actual_row["distinct_clients"] == expected, what
    else:
        # HyperLogLog beyond 1,024 clients per group: standard error 0.8 %.
        assert expected > 1024 or actual_row["distinct_clients"] == expected, what
        assert abs(actual_row["distinct_clients"] - expected) <= 0.03 * expected, f"{what}: {actual_row['distinct_clients']} vs {expected}"


def assert_counts(actual: dict, expected: dict, what: str):
    for key in ("requests", "bytes", "redirected_requests", "redirected_bytes"):
        assert actual[key] == expected[key], f"{what} {key}: {actual[key]} != {expected[key]}"
    assert_distinct(actual, expected["distinct_clients"], f"{what} distinct clients")


# --------------------------------------------------------------------------- ground truth


@pytest.mark.parametrize("fmt", FORMATS)
def test_report_equals_ground_truth(cli, simple_snapshot, generated, fmt):
    truth = json.loads((generated / f"truth-{fmt}.json").read_text())
    report, _ = analyze(cli, simple_snapshot, generated, fmt)
    lines = report["lines"]
    assert lines["total"] == truth["lines"]
    assert lines["records"] == truth["records"]
    assert lines["skipped"] == truth["skipped"]
    malformed = {k: v for k, v in lines["malformed_by_reason"].items() if v}
    assert malformed == truth["malformed"]
    assert lines["invalid_client_addresses"] + lines["missing_client_addresses"] == truth["invalid_client_addresses"]
    assert lines["untimed_records"] == 0

    assert_counts(report["total"], truth["total"], "total")
    providers = {row["provider"]: row for row in report["providers"]}
    assert set(providers) == set(truth["providers"])
    for name, expected in truth["providers"].items():
        assert_counts(providers[name], expected, f"provider {name or '(none)'}")
        assert providers[name]["answered_requests"] == 0

    regions = {f'{row["provider"]}/{row["region"]}': row for row in report["regions"] if row["provider"]}
    assert set(regions) == set(truth["regions"])
    for key, expected in truth["regions"].items():
        assert_counts(regions[key], expected, f"region {key}")

    unmatched = {str(row["asn"]): row for row in report["asns"] if not row["provider"]}
    assert set(unmatched) == set(truth["unmatched_asns"])
    for asn, expected in truth["unmatched_asns"].items():
        assert_counts(unmatched[asn], expected, f"AS{asn}")
    top = [str(row["asn"]) for row in report["top_unmatched_asns"][:10]]
    expected_top = sorted(truth["unmatched_asns"], key=lambda a: (-truth["unmatched_asns"][a]["bytes"],
                                                                  -truth["unmatched_asns"][a]["requests"], int(a)))[:10]
    assert top == expected_top

    series = report["hourly"]["series"]
    hours = {str(hour["start"]): dict(zip(series, hour["bytes"])) for hour in report["hourly"]["hours"]}
    assert set(hours) == set(truth["hourly"])
    for hour, expected in truth["hourly"].items():
        for provider in series:
            assert hours[hour][provider] == expected.get(provider, 0), f"hour {hour} {provider}"


def test_stdin_gzip_and_all_outputs(cli, simple_snapshot, generated):
    data = (generated / "combined.log.gz").read_bytes()
    csv, hourly, html = (generated / n for n in ("stdin.csv", "stdin-hourly.csv", "report.html"))
    report, proc = analyze(cli, simple_snapshot, generated, "combined", "--csv", csv, "--csv-hourly", hourly,
                           "--html", html, inputs=["-"], stdin=data)
    truth = json.loads((generated / "truth-combined.json").read_text())
    assert report["lines"]["total"] == truth["lines"] and report["inputs"][0]["name"] == "-"
    summary = proc.stdout.decode()
    assert "would redirect" in summary and "top unmatched ASNs" in summary and "malformed 40" in summary

    rows = csv.read_text().splitlines()
    assert rows[0].startswith("level,provider,region,asn,requests,bytes,distinct_clients")
    total = rows[1].split(",")
    assert total[0] == "total" and int(total[4]) == truth["records"] and int(total[5]) == truth["total"]["bytes"]
    assert sum(1 for r in rows if r.startswith("provider,")) == len(truth["providers"])
    assert len(hourly.read_text().splitlines()) == 1 + len(truth["hourly"])

    page = html.read_text()
    assert page.startswith("<!doctype html>") and page.count("<svg viewBox") == 3
    for forbidden in ("<script", "src=", "href=", "url(", "@import", "<link"):
        assert forbidden not in page


def test_several_inputs_add_up(cli, simple_snapshot, generated):
    one, _ = analyze(cli, simple_snapshot, generated, "combined")
    two, _ = analyze(cli, simple_snapshot, generated, "combined",
                     inputs=[generated / "combined.log.gz", generated / "combined.log.gz"])
    assert two["total"]["requests"] == 2 * one["total"]["requests"]
    assert two["total"]["bytes"] == 2 * one["total"]["bytes"]
    assert two["total"]["distinct_clients"] == one["total"]["distinct_clients"]
    assert len(two["inputs"]) == 2


def test_wrong_format_fails_with_a_clear_message(cli, simple_snapshot, generated):
    _, proc = analyze(cli, simple_snapshot, generated, "envoy", inputs=[generated / "combined.log.gz"], check=False)
    assert proc.returncode != 0
    assert b"no line matched --format envoy" in proc.stderr
    proc = subprocess.run([str(cli), "analyze", "-s", str(simple_snapshot), "--format", "custom", "-"],
                          input=b"", capture_output=True, timeout=60)
    assert proc.returncode != 0 and b"--log-format" in proc.stderr


# --------------------------------------------------------------------------- export


def read_ranges(path: Path):
    ranges = {4: [], 6: []}
    with path.open() as handle:
        header = handle.readline().strip().split(",")
        assert header == ["family", "start", "end", "start_hex", "end_hex", "prefix", "provider", "region", "asn"]
        for line in handle:
            family, start, end, start_hex, end_hex, prefix, provider, region, asn = line.rstrip("\n").split(",")
            family, start, end = int(family), int(start), int(end)
            assert int(start_hex, 16) == start and int(end_hex, 16) == end
            assert len(start_hex) == (8 if family == 4 else 32)
            network = ipaddress.ip_network(prefix)
            assert int(network.network_address) <= start <= end <= int(network.broadcast_address)
            ranges[family].append((start, end, prefix, provider, region, asn))
    for family in (4, 6):
        for a, b in zip(ranges[family], ranges[family][1:]):
            assert a[1] < b[0], "ranges overlap or are out of order"
    return ranges


def range_lookup(ranges, address: str):
    ip = ipaddress.ip_address(address)
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    table = ranges[ip.version]
    value = int(ip)
    index = bisect.bisect_right([r[0] for r in table], value) - 1 if table else -1
    if index >= 0 and table[index][0] <= value <= table[index][1]:
        _, _, prefix, provider, region, asn = table[index]
        return f"{prefix}\t{provider or '-'}\t{region or '-'}\t{asn or '-'}"
    return "-\t-\t-\t-"


def test_export_ranges_match_cli_lookups(cli, simple_snapshot, tmp_path):
    path = tmp_path / "ranges.csv"
    path.write_text(run([cli, "export", "prefixes", "-s", simple_snapshot, "--format", "csv-ranges"]).stdout)
    ranges = read_ranges(path)
    assert len(ranges[4]) > 10_000 and len(ranges[6]) > 3_000

    rng = random.Random(5)
    addresses = []
    for family, bits in ((4, 32), (6, 128)):
        for start, end, *_ in rng.sample(ranges[family], 1500):
            for value in (start, end, start - 1, end + 1, rng.randint(start, end)):
                if 0 <= value < 2 ** bits:
                    addresses.append(str(ipaddress.ip_address(value) if family == 4 else ipaddress.IPv6Address(value)))
        addresses += [str(ipaddress.ip_address(rng.getrandbits(bits)) if family == 4 else ipaddress.IPv6Address(rng.getrandbits(bits)))
                      for _ in range(3000)]
    addresses += ["::ffff:3.5.140.2", "0.0.0.0", "255.255.255.255", "::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"]
    out = run([cli, "lookup", "-s", simple_snapshot], input="\n".join(addresses) + "\n").stdout.splitlines()
    assert len(out) == len(addresses)
    mismatches = []
    for address, line in zip(addresses, out):
        got = line.split("\t", 1)[1]
        want = range_lookup(ranges, address)
        if got != want:
            mismatches.append((address, got, want))
    assert not mismatches, mismatches[:10]

    # Every range names a prefix of the plain export with the same attributes.
    plain = run([cli, "export", "prefixes", "-s", simple_snapshot]).stdout.splitlines()
    attributes = {row.split(",")[0]: row.split(",", 1)[1] for row in plain[1:]}
    for family in (4, 6):
        for _, _, prefix, provider, region, asn in ranges[family]:
            assert attributes[prefix] == f"{provider},{region},{asn}"


def documented_duckdb_sql() -> str:
    text = DOCS.read_text()
    match = re.search(r"<!-- tested: duckdb -->\s*```sql\n(.*?)```", text, re.S)
    assert match, "docs/analysis.md lost its tested DuckDB block"
    return match.group(1)


def test_documented_duckdb_query_reproduces_analyze(cli, simple_snapshot, generated, tmp_path, monkeypatch):
    duckdb = pytest.importorskip("duckdb")
    (tmp_path / "prefix-ranges.csv").write_text(
        run([cli, "export", "prefixes", "-s", simple_snapshot, "--format", "csv-ranges"]).stdout)
    (tmp_path / "access.log.gz").write_bytes((generated / "combined.log.gz").read_bytes())
    report, _ = analyze(cli, simple_snapshot, generated, "combined")
    monkeypatch.chdir(tmp_path)
    con = duckdb.connect()
    rows = con.execute(documented_duckdb_sql()).fetchall()
    providers = {row["provider"]: row for row in report["providers"]}
    # Invalid client addresses have no provider in both; they are rows of the "" provider.
    assert {r[0] for r in rows} == set(providers)
    for provider, requests, size, redirected, redirected_bytes, clients in rows:
        row = providers[provider]
        assert (requests, size, redirected, redirected_bytes) == (
            row["requests"], row["bytes"], row["redirected_requests"], row["redirected_bytes"]), provider
        assert_distinct(row, clients, f"{provider} distinct clients")
