"""The `location-db` importer against Debian's own libloc on the real database.

Debian's `libloc-database` ships `location.db`; its `location` CLI (libloc, in C, through its
Python module) is the oracle. A snapshot compiled with the database as the ASN table must answer
`redirector lookup` exactly as libloc answers, for every network's first and last address, their
outside neighbours and random addresses (about 2.9 million): network and ASN.

- `location lookup` (the CLI itself) on a 120,000-address sample, batched, two processes at once
  (the CLI formats about 8,000 answers a second): network, ASN, and country.
- libloc's Python module (the CLI's engine, 200,000 lookups a second) on every address.
- An independent reading of the file in Python (testkit.locationdb) with pytricia as the
  longest-prefix match, on every address.
- Provider sources selected by `countries:` and by `asns:` + `countries:` own exactly the addresses
  whose most specific network matches, by the independent reading.
"""

from __future__ import annotations

import concurrent.futures
import json
import ipaddress
import random
import shutil
import socket
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest
import pytricia

from testkit import locationdb
from testkit.paths import CLI, REPO
from testkit.processes import run

DATABASE = locationdb.DEBIAN_DATABASE
LOCATION = shutil.which("location")
SYSTEM_PYTHON = "/usr/bin/python3"   # the interpreter Debian's python3-location is built for
CLI_SAMPLE = 120_000
CLI_BATCH = 15_000

pytestmark = pytest.mark.skipif(not DATABASE.exists() or LOCATION is None,
                                reason="Debian libloc-database and location not installed (scripts/setup.sh)")

ROUTES = "routes:\n  - { name: r, path: /x, pass: true }\n"


def address_text(family: int, value: int) -> str:
    """inet_ntop's text (far faster than ipaddress for three million addresses)."""
    if family == 4:
        return socket.inet_ntop(socket.AF_INET, value.to_bytes(4, "big"))
    return socket.inet_ntop(socket.AF_INET6, value.to_bytes(16, "big"))


@pytest.fixture(scope="module")
def database():
    return locationdb.read(DATABASE)


@pytest.fixture(scope="module")
def expected(database):
    """The independent longest-prefix match: address text -> (network text, asn, country) or None."""
    tries = {4: pytricia.PyTricia(32), 6: pytricia.PyTricia(128)}
    for network in database.networks:
        key = f"{address_text(network.family, network.address)}/{network.length}"
        tries[network.family][key] = (key, network.asn, network.country)

    def answer(address: str):
        trie = tries[6 if ":" in address else 4]
        return trie.get(address)
    return answer


@pytest.fixture(scope="module")
def probes(database) -> list[str]:
    """Every network's first and last address, the outside neighbours of 100,000 networks, random
    IPv4 addresses and random IPv6 addresses in 2000::/3 and inside random networks."""
    rng = random.Random(13)
    found = set()
    for network in database.networks:
        found.add((network.family, network.address))
        found.add((network.family, network.last))
    for network in rng.sample(database.networks, 100_000):
        top = (1 << (32 if network.family == 4 else 128)) - 1
        if network.address > 0:
            found.add((network.family, network.address - 1))
        if network.last < top:
            found.add((network.family, network.last + 1))
    for _ in range(100_000):
        found.add((4, rng.randrange(1 << 32)))
    for _ in range(50_000):
        found.add((6, (0x2000 << 112) | rng.randrange(1 << 125)))
    for network in rng.sample(database.networks, 50_000):
        found.add((network.family, rng.randrange(network.address, network.last + 1)))
    return [address_text(family, value) for family, value in found]


def compile_config(tmp_path: Path, text: str) -> Path:
    config = tmp_path / "redirector.yaml"
    config.write_text("version: 1\n" + text + ROUTES)
    snapshot = tmp_path / "snapshot.rdb"
    result = run([CLI, "compile", "-c", config, "-o", snapshot], timeout=300)
    return snapshot, result.stdout + result.stderr


def redirector_lookup(snapshot: Path, addresses: list[str]) -> dict[str, tuple]:
    """address -> (prefix or None, provider or None, asn)."""
    proc = run([CLI, "lookup", "-s", snapshot], input="\n".join(addresses) + "\n", timeout=300)
    answers = {}
    for line in proc.stdout.splitlines():
        address, prefix, provider, _region, asn = line.split("\t")
        answers[address] = (None if prefix == "-" else prefix, None if provider == "-" else provider,
                            0 if asn == "-" else int(asn))
    assert len(answers) == len(addresses)
    return answers


def same_network(a: str | None, b: str | None) -> bool:
    if a == b:
        return True
    return a is not None and b is not None and ipaddress.ip_network(a) == ipaddress.ip_network(b)


@pytest.fixture(scope="module")
def asn_snapshot(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("location-asn")
    return compile_config(tmp, f"asnTable:\n  - {{ format: location-db, path: {DATABASE} }}\n")


@pytest.fixture(scope="module")
def asn_answers(asn_snapshot, probes):
    return redirector_lookup(asn_snapshot[0], probes)


def test_compile_report_names_the_database(asn_snapshot, database):
    """The report gives the database's own creation time (the header's, as `location version`
    prints it) and its network count."""
    _, report = asn_snapshot
    created = datetime.fromtimestamp(database.created_at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    cli_version = run([LOCATION, "--database", DATABASE, "version"]).stdout.strip()
    assert datetime.strptime(cli_version, "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=timezone.utc).timestamp() == database.created_at
    assert f"created {created}" in report, report
    assert f"{len(database.networks)} networks" in report, report
    assert "CC BY-SA 4.0" in report


def test_every_address_agrees_with_the_independent_reading(asn_answers, expected, probes):
    assert len(probes) > 2_500_000
    mismatches = []
    for address in probes:
        want = expected(address)
        prefix, _provider, asn = asn_answers[address]
        got = (prefix, asn)
        if want is None:
            ok = prefix is None
        else:
            ok = same_network(prefix, want[0]) and asn == want[1]
        if not ok:
            mismatches.append((address, want, got))
    assert not mismatches, f"{len(mismatches)} mismatches, first: {mismatches[:5]}"


LIBLOC_SCRIPT = """
import sys, location
db = location.Database(sys.argv[1])
out = []
for line in sys.stdin:
    address = line.strip()
    network = db.lookup(address)
    out.append(f"{address}\\t{network}\\t{network.asn or 0}\\t{network.country_code}" if network else f"{address}\\t-\\t0\\t")
sys.stdout.write("\\n".join(out) + "\\n")
"""


def test_every_address_agrees_with_libloc(asn_answers, probes):
    """libloc's own lookup (the module the CLI calls) on every probe address."""
    proc = run([SYSTEM_PYTHON, "-c", LIBLOC_SCRIPT, DATABASE], input="\n".join(probes) + "\n", timeout=300)
    lines = proc.stdout.splitlines()
    assert len(lines) == len(probes)
    mismatches = []
    for line in lines:
        address, network, asn, _country = line.split("\t")
        prefix, _provider, got_asn = asn_answers[address]
        want = None if network == "-" else network
        if not (same_network(prefix, want) and got_asn == int(asn)):
            mismatches.append((address, network, asn, prefix, got_asn))
    assert not mismatches, f"{len(mismatches)} mismatches, first: {mismatches[:5]}"


def cli_lookup(addresses: list[str]) -> dict[str, dict[str, str]]:
    """`location lookup ADDR…`: address -> {"Network": …, "Country": …, "Autonomous System": …};
    addresses it has nothing for are absent ("Nothing found for" goes to stderr, exit 1)."""
    proc = subprocess.run([LOCATION, "--database", str(DATABASE), "lookup", *addresses],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    answers, current = {}, None
    for line in proc.stdout.splitlines():
        if not line.startswith("  "):
            current = answers.setdefault(line[:-1], {})
        else:   # "  %-24s: %s"
            current[line[2:26].strip()] = line[28:]
    missing = {line.removeprefix("Nothing found for ") for line in proc.stderr.splitlines()}
    assert set(answers) | missing == set(addresses), "the CLI answered for other addresses than asked"
    return answers


def test_location_lookup_cli_agrees(asn_answers, expected, probes, database):
    """The named oracle: Debian's `location lookup` on a 120,000-address sample of the probes."""
    sample = random.Random(5).sample(probes, CLI_SAMPLE)
    batches = [sample[i:i + CLI_BATCH] for i in range(0, len(sample), CLI_BATCH)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        answers = {}
        for part in pool.map(cli_lookup, batches):
            answers.update(part)
    names = {name: code for code, name in database.countries.items()}
    listed = run([LOCATION, "--database", DATABASE, "list-countries", "--show-name"]).stdout.splitlines()
    assert {line.split(" ", 1)[0]: line.split(" ", 1)[1] for line in listed} == database.countries
    assert len(answers) > CLI_SAMPLE // 2
    mismatches = []
    for address in sample:
        cli = answers.get(address)
        prefix, _provider, asn = asn_answers[address]
        if cli is None:
            if prefix is not None:
                mismatches.append((address, "nothing", prefix))
            continue
        cli_asn = int(cli["Autonomous System"].split(" ", 1)[0].removeprefix("AS")) if "Autonomous System" in cli else 0
        country = cli.get("Country", "")
        cli_country = names.get(country, country)
        want = expected(address)
        if not (same_network(prefix, cli["Network"]) and asn == cli_asn and want is not None and want[2] == cli_country):
            mismatches.append((address, cli, (prefix, asn), want))
    assert not mismatches, f"{len(mismatches)} of {len(sample)} differ, first: {mismatches[:5]}"


def test_providers_selected_by_country_and_asn(tmp_path, expected, probes):
    """`countries:` and `asns:` + `countries:` select exactly the addresses whose most specific
    network matches: a selected network around an unselected one must not claim its addresses."""
    snapshot, _ = compile_config(tmp_path, f"""providers:
  - name: de-fr
    sources: [{{ format: location-db, path: {DATABASE}, countries: [DE, FR] }}]
  - name: google-us
    sources: [{{ format: location-db, path: {DATABASE}, asns: [15169, 396982], countries: [us] }}]
""")
    answers = redirector_lookup(snapshot, probes)
    mismatches, counts = [], {"de-fr": 0, "google-us": 0}
    for address in probes:
        want = expected(address)
        owner = None
        if want is not None and want[2] in ("DE", "FR"):
            owner = "de-fr"
        elif want is not None and want[1] in (15169, 396982) and want[2] == "US":
            owner = "google-us"
        _prefix, provider, asn = answers[address]
        if provider != owner or (owner is not None and asn != want[1]):
            mismatches.append((address, want, answers[address]))
        if owner:
            counts[owner] += 1
    assert not mismatches, f"{len(mismatches)} mismatches, first: {mismatches[:5]}"
    assert counts["de-fr"] > 10_000 and counts["google-us"] > 100, counts


def test_unknown_country_and_foreign_options_are_errors(tmp_path):
    config = tmp_path / "bad.yaml"
    config.write_text(f"version: 1\nproviders:\n  - name: x\n    sources: [{{ format: location-db, path: {DATABASE}, countries: [ZZ] }}]\n" + ROUTES)
    proc = run([CLI, "compile", "-c", config, "-o", tmp_path / "x.rdb"], check=False)
    assert proc.returncode != 0 and "country 'ZZ' is not in the database" in proc.stderr, proc.stderr
    config.write_text("version: 1\nasnTable:\n  - { format: pyasn, path: x.dat, asns: [1] }\n" + ROUTES)
    proc = run([CLI, "compile", "-c", config, "-o", tmp_path / "x.rdb"], check=False)
    assert proc.returncode != 0 and "format pyasn has none" in proc.stderr, proc.stderr


def test_default_dataset_takes_the_vendor_prefixes_from_the_database(tmp_path, expected, database):
    """examples/simple reads location.db when it is installed (its `otherwise`, the 2014 pyasn
    excerpt, when not): every vendor ASN resolves to the database's current networks, and an
    address in one of them is its vendor's, with the database's ASN."""
    simple = REPO / "examples" / "simple" / "redirector.yaml"
    snapshot = tmp_path / "simple.rdb"
    result = run([CLI, "compile", "-c", simple, "-o", snapshot, "--verbose"], timeout=300)
    report = result.stdout + result.stderr
    assert f"{DATABASE}: location database by" in report and "not found: read its 'otherwise'" not in report, report[-3000:]
    provenance = json.loads(run([CLI, "inspect", "--provenance", "--json", snapshot]).stdout)
    [source] = [s for s in provenance["sources"] if s["format"] == "location-db"]
    assert source["path"] == str(DATABASE) and source["publishedAt"] == database.created_at
    # Tencent's AS132203 (k8s.io-asns/tencentcloud.yaml): its networks in the database, by the
    # independent reading, are the vendor's in the snapshot.
    networks = [n for n in database.networks if n.asn == 132203 and n.family == 4]
    assert len(networks) > 10
    firsts = sorted({address_text(4, n.address) for n in networks})
    answers = redirector_lookup(snapshot, firsts)
    wrong = [(a, answers[a]) for a in firsts if expected(a)[1] == 132203 and answers[a][1] != "tencentcloud"]
    assert not wrong, wrong[:5]
