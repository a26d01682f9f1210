"""`redirector diff OLD NEW --logs`: the traffic whose decision a snapshot change would change.

Two snapshots from hand-made configs whose difference is known: the example policy (old), and the
same policy with 307 instead of 302 redirects and without its artifacts route (new). Every old
redirect therefore changes: registry redirects keep their target and become 307, artifacts
redirects become passes; nothing else changes. The expected from → to table is computed here,
independently of the diff code, from what `redirector analyze` reports for each snapshot separately
(per provider: redirected requests and bytes) and the providers' targets in the k8s.io vendor files.
Logs come from generate_logs.py, in every format analyze reads.
"""

from __future__ import annotations

import html.parser
import importlib.util
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from urllib.parse import urlparse

import pytest

from testkit.paths import EXAMPLES, PYASN_DATA
from testkit.processes import python_env, run

GENERATOR = Path(__file__).with_name("generate_logs.py")
PYASN = PYASN_DATA / "ipasn_20140513.dat.gz"
LINES = 8_000
FORMATS = ["combined", "envoy", "gcs", "custom"]

TRAFFIC_KEYS = ["old", "new", "format", "inputs", "lines", "malformed_examples", "requests", "bytes", "changed_requests",
                "changed_bytes", "changed_request_share", "changed_byte_share", "changes", "unchanged", "elapsed_seconds",
                "lines_per_second"]
ROW_KEYS = ["from", "to", "location_changed", "requests", "bytes", "request_share", "byte_share"]
OUTCOME_KEYS = ["action", "status", "target"]


def _provider_targets() -> dict[str, dict]:
    """provider → {registry, artifacts} hosts, read by the generator's own k8s.io file reader."""
    spec = importlib.util.spec_from_file_location("generate_logs", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(GENERATOR.parent.parent / "Conformance"))
    spec.loader.exec_module(module)
    return module.read_owners()[1]


@pytest.fixture(scope="module")
def snapshots(cli, tmp_path_factory) -> tuple[Path, Path]:
    work = tmp_path_factory.mktemp("diff-logs")
    text = (EXAMPLES / "simple" / "redirector.yaml").read_text().replace("../data/", f"{EXAMPLES / 'data'}/")
    changed = text.replace("  status: 302", "  status: 307")
    start, end = changed.index("  - name: artifacts"), changed.index("defaults:")
    changed = changed[:start] + changed[end:]
    assert changed != text and "artifacts\n" not in changed.split("routes:")[1]
    (work / "old.yaml").write_text(text)
    (work / "new.yaml").write_text(changed)
    for name in ("old", "new"):
        run([cli, "compile", "-c", work / f"{name}.yaml", "-o", work / f"{name}.rdb"])
    return work / "old.rdb", work / "new.rdb"


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    if not PYASN.exists():
        pytest.skip(f"{PYASN} missing (Debian python3-pyasn)")
    out = tmp_path_factory.mktemp("diff-logs-gen")
    run([sys.executable, GENERATOR, "--out", out, "--lines", LINES, "--seed", "23"], timeout=600, env=python_env())
    return out


def log_options(generated: Path, fmt: str) -> tuple[list, Path]:
    """The format options the truth file asks for, and the log file."""
    truth = json.loads((generated / f"truth-{fmt}.json").read_text())
    options = ["--format", fmt]
    if "log_format" in truth:
        options += ["--log-format", truth["log_format"]]
    if "strip_path_prefix" in truth:
        options += ["--strip-path-prefix", truth["strip_path_prefix"]]
    return options, generated / truth["file"]


def analyze(cli, snapshot: Path, generated: Path, fmt: str) -> dict:
    options, log = log_options(generated, fmt)
    out = generated / f"analyze-{fmt}-{snapshot.stem}.json"
    run([cli, "analyze", "-s", snapshot, *options, "--json", out, "-q", "--no-progress", log])
    return json.loads(out.read_text())


def diff(cli, old: Path, new: Path, generated: Path, fmt: str, *extra) -> subprocess.CompletedProcess:
    options, log = log_options(generated, fmt)
    cmd = [cli, "diff", old, new, "--logs", log, *options, "--no-progress", *extra]
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300)


def expected_rows(before: dict, after: dict) -> Counter:
    """(from host, from status, to action, to status, to host) → [requests, bytes], from analyze's per-provider rows."""
    targets = _provider_targets()
    rows: Counter = Counter()
    new_by_provider = {row["provider"]: row for row in after["providers"]}
    for row in before["providers"]:
        provider = row["provider"]
        kept = new_by_provider.get(provider, {"redirected_requests": 0, "redirected_bytes": 0})
        assert kept["redirected_requests"] <= row["redirected_requests"], provider
        if kept["redirected_requests"]:
            host = targets[provider]["registry"]
            rows[(host, 302, "redirect", 307, host, "requests")] += kept["redirected_requests"]
            rows[(host, 302, "redirect", 307, host, "bytes")] += kept["redirected_bytes"]
        moved = row["redirected_requests"] - kept["redirected_requests"]
        if moved:
            host = targets[provider]["artifacts"]
            rows[(host, 302, "pass", 0, "", "requests")] += moved
            rows[(host, 302, "pass", 0, "", "bytes")] += row["redirected_bytes"] - kept["redirected_bytes"]
    return rows


@pytest.mark.parametrize("fmt", FORMATS)
def test_changed_share_equals_analyze_per_snapshot(cli, snapshots, generated, fmt):
    old, new = snapshots
    before, after = analyze(cli, old, generated, fmt), analyze(cli, new, generated, fmt)
    proc = diff(cli, old, new, generated, fmt, "--json")
    assert proc.returncode == 1, proc.stderr
    traffic = json.loads(proc.stdout)["traffic"]

    # The same lines read, the same requests decided.
    assert traffic["lines"] == before["lines"] == after["lines"]
    assert traffic["requests"] == before["total"]["requests"]
    assert traffic["bytes"] == before["total"]["bytes"]
    # Every old redirect changes (status or target); nothing else does.
    assert traffic["changed_requests"] == before["total"]["redirected_requests"] > 0
    assert traffic["changed_bytes"] == before["total"]["redirected_bytes"]
    assert traffic["changed_request_share"] == pytest.approx(before["total"]["redirected_requests"] / before["total"]["requests"], abs=1e-12)
    assert traffic["changed_byte_share"] == pytest.approx(before["total"]["redirected_bytes"] / before["total"]["bytes"], abs=1e-12)
    # Registry redirects that stay are exactly what analyze says the new snapshot redirects.
    to_307 = [row for row in traffic["changes"] if row["to"]["action"] == "redirect"]
    assert sum(row["requests"] for row in to_307) == after["total"]["redirected_requests"] > 0

    # The table, row by row, against analyze's per-provider numbers.
    actual: Counter = Counter()
    for row in traffic["changes"]:
        key = (urlparse(row["from"]["target"]).hostname, row["from"]["status"], row["to"]["action"], row["to"]["status"],
               urlparse(row["to"]["target"]).hostname or "")
        assert row["from"]["action"] == "redirect" and not row["location_changed"], row
        actual[key + ("requests",)] += row["requests"]
        actual[key + ("bytes",)] += row["bytes"]
    assert actual == expected_rows(before, after)
    # Unchanged requests: the passes and answers of the old snapshot, which stay.
    assert all(row["from"] == row["to"] and row["from"]["action"] != "redirect" for row in traffic["unchanged"])
    assert sum(row["requests"] for row in traffic["unchanged"]) == before["total"]["requests"] - before["total"]["redirected_requests"]


def test_fail_over_gate(cli, snapshots, generated):
    old, new = snapshots
    traffic = json.loads(diff(cli, old, new, generated, "combined", "--json").stdout)["traffic"]
    requests, bytes_ = traffic["changed_request_share"] * 100, traffic["changed_byte_share"] * 100
    assert 0 < requests < 100 and 0 < bytes_ < 100
    assert diff(cli, old, new, generated, "combined", "--fail-over", f"{requests + 0.01:.4f}").returncode == 0
    over = diff(cli, old, new, generated, "combined", "--fail-over", f"{requests - 0.01:.4f}")
    assert over.returncode == 3 and "over --fail-over" in over.stderr
    assert diff(cli, old, new, generated, "combined", "--fail-over-bytes", f"{bytes_ + 0.01:.4f}").returncode == 0
    assert diff(cli, old, new, generated, "combined", "--fail-over", "100", "--fail-over-bytes", f"{bytes_ - 0.01:.4f}").returncode == 3
    # Without a gate: 1 because something changed; identical snapshots: 0, even with a 0 % gate.
    assert diff(cli, old, new, generated, "combined").returncode == 1
    same = diff(cli, old, old, generated, "combined", "--fail-over", "0")
    assert same.returncode == 0 and "decision changes for 0.00% of requests" in same.stdout
    # Errors are 2 (1 means "changed"), usage errors 64.
    assert subprocess.run([str(cli), "diff", str(old), str(new), "--logs", "/nonexistent.log"], capture_output=True).returncode == 2
    assert subprocess.run([str(cli), "diff", str(old), str(new), "--fail-over", "5"], capture_output=True).returncode == 64
    assert subprocess.run([str(cli), "diff", str(old), str(new), "--logs", "-", "--fail-over", "101"], capture_output=True).returncode == 64
    garbage = subprocess.run([str(cli), "diff", str(old), str(new), "--logs", "-"], input=b"not a log line\n", capture_output=True)
    assert garbage.returncode == 2 and b"no line matched --format combined" in garbage.stderr


def test_json_schema_is_stable(cli, snapshots, generated):
    old, new = snapshots
    document = json.loads(diff(cli, old, new, generated, "combined", "--json").stdout)
    assert list(document) == ["changed", "providers", "destinations", "routes", "prefixes", "traffic"]
    traffic = document["traffic"]
    assert list(traffic) == TRAFFIC_KEYS
    assert traffic["old"]["path"] == str(old) and traffic["new"]["path"] == str(new)
    for row in traffic["changes"] + traffic["unchanged"]:
        assert list(row) == ROW_KEYS
        assert list(row["from"]) == OUTCOME_KEYS and list(row["to"]) == OUTCOME_KEYS
    counts = [row["requests"] for row in traffic["changes"]]
    assert counts == sorted(counts, reverse=True)
    # Without --logs the document is the snapshot diff alone.
    plain = subprocess.run([str(cli), "diff", str(old), str(new), "--json"], capture_output=True, text=True)
    assert list(json.loads(plain.stdout)) == ["changed", "providers", "destinations", "routes", "prefixes"]


class _Tables(html.parser.HTMLParser):
    """Collects the cell texts of each table by id, and every attribute that could load something."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.current: str | None = None
        self.loads: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attributes = dict(attrs)
        self.loads += [f"{tag} {name}" for name in ("src", "href") if name in attributes]
        if tag == "table":
            self.current = attributes.get("id") or f"table{len(self.tables)}"
            self.tables[self.current] = []
        elif tag == "tr" and self.current:
            self.tables[self.current].append([])
        elif tag in ("td", "th") and self.current:
            self.tables[self.current][-1].append("")

    def handle_endtag(self, tag):
        if tag == "table":
            self.current = None

    def handle_data(self, data):
        if self.current and self.tables[self.current] and self.tables[self.current][-1]:
            self.tables[self.current][-1][-1] += data


def test_html_page(cli, snapshots, generated, tmp_path):
    old, new = snapshots
    page = tmp_path / "diff.html"
    proc = diff(cli, old, new, generated, "combined", "--html", page, "--limit", "3")
    assert proc.returncode == 1, proc.stderr
    traffic = json.loads(diff(cli, old, new, generated, "combined", "--json").stdout)["traffic"]
    parser = _Tables()
    parser.feed(page.read_text())
    parser.close()
    assert parser.loads == [] and "script" not in parser.tags and "link" not in parser.tags
    rows = parser.tables["changes"]
    assert rows[0][:2] == ["from (old)", "to (new)"]
    assert len(rows) == 1 + min(3, len(traffic["changes"]))
    for cells, row in zip(rows[1:], traffic["changes"]):
        assert cells[0] == f"redirect {row['from']['status']} {row['from']['target']}"
        assert cells[1] == ("pass" if row["to"]["action"] == "pass" else f"redirect {row['to']['status']} {row['to']['target']}")
        assert cells[2].replace(",", "") == str(row["requests"])
    assert "Input" in page.read_text() and "unchanged" in parser.tables
