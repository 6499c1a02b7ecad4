"""Paths of the public data the tests read: copies kept in this folder (see SOURCES.md)."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parent
#: The repository checkout the tests run in.
REPO = DATA.parents[1]
#: The OFAC SDN digital-currency data: SDN Advanced XML, reference CSVs, per-asset lists.
OFAC = DATA / "ofac"
OFAC_XML = OFAC / "sdn-advanced-xml"
OFAC_REFERENCE = OFAC / "reference"
OFAC_PUBLISHED = OFAC / "published"
#: IBM AMLworld (HI-Small) laundering patterns.
AMLWORLD_PATTERNS = DATA / "amlworld" / "amlworld_HI-Small_patterns.json"
RONIN = DATA / "ronin"
