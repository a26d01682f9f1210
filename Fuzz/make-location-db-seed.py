#!/usr/bin/python3
"""Writes Fuzz/Corpus/location-db/tiny.db with libloc's own writer (Debian's python3-location, the
library behind the `location` CLI): nested IPv4 and IPv6 networks, one without an AS, two AS and
two countries, so the fuzzer starts from a file every section of which is valid.

    /usr/bin/python3 Fuzz/make-location-db-seed.py
"""

from pathlib import Path

import location

writer = location.Writer()
writer.vendor = "Redirector fuzz seed"
writer.description = "A tiny database for the location-db fuzz target"
writer.license = "CC0-1.0"
for number, name in [(64500, "Example AS"), (64501, "Other AS")]:
    writer.add_as(number).name = name
for code, name in [("DE", "Germany"), ("FR", "France")]:
    country = writer.add_country(code)
    country.name, country.continent_code = name, "EU"
for prefix, asn, country in [("192.0.2.0/24", 64500, "DE"), ("192.0.2.128/25", None, "FR"),
                             ("198.51.100.0/24", 64501, "FR"), ("2001:db8::/32", 64500, "DE"),
                             ("2001:db8:8000::/33", 64501, None)]:
    network = writer.add_network(prefix)
    if asn is not None:
        network.asn = asn
    if country is not None:
        network.country_code = country
writer.write(str(Path(__file__).resolve().parent / "Corpus" / "location-db" / "tiny.db"))
