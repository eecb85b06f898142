#!/usr/bin/env python3
"""Generate runtime/numbers/data/nanp.tsv from Google's libphonenumber data (PyPI `phonenumbers`).

One row per North American area code (NPA): npa, country, state/province code, region name,
IANA time zones. The state code is taken from libphonenumber's city-level entries of the NPA
("Jersey City, NJ" -> NJ, the most common one), so no list is typed by hand. Re-run when a new
phonenumbers release adds area codes:

    pip install phonenumbers && python3 runtime/numbers/tools/generate_nanp.py > runtime/numbers/data/nanp.tsv
"""
import collections
import re

import phonenumbers
from phonenumbers.geodata import GEOCODE_DATA
from phonenumbers import timezone

CODE = re.compile(r", ([A-Z]{2})$")

def city_codes(key):
    codes = collections.Counter()
    for prefix, names in GEOCODE_DATA.items():
        if prefix.startswith(key) and len(prefix) > 4:
            match = CODE.search(names.get("en", ""))
            if match:
                codes[match.group(1)] += 1
    return codes


rows = []
code_of_region = {}
for npa in range(200, 1000):
    key = "1%d" % npa
    region = GEOCODE_DATA.get(key, {}).get("en")
    if not region:
        continue
    own = CODE.search(region)
    codes = city_codes(key)
    state = own.group(1) if own else (codes.most_common(1)[0][0] if codes else "")
    if state and not own:
        code_of_region[region] = state
    example = phonenumbers.parse("+1%d2%06d" % (npa, 0))
    country = phonenumbers.region_code_for_number(example) or ""
    zones = timezone.time_zones_for_number(example)
    zones = ",".join(z for z in zones if z != "Etc/Unknown")
    rows.append([npa, country, state, region, zones])

# A region named only by its state ("Ohio") takes the code other area codes of that state have.
print("# npa\tcountry\tstate\tregion\ttime_zones\t(generated from libphonenumber %s)" % phonenumbers.__version__)
for npa, country, state, region, zones in rows:
    state = state or code_of_region.get(region, "")
    print("%d\t%s\t%s\t%s\t%s" % (npa, country, state, region, zones))
