"""Derive labelled-malicious-eth-2023-01-26.csv from the Forta labelled datasets.

    python3 rules/lists/derive_labelled_eth.py ../shared/data/labelled-eth-addresses > \
        rules/lists/labelled-malicious-eth-2023-01-26.csv

One row per address (lower case, first source wins): the Etherscan label (e.g.
"Ronin Bridge Exploiter 1", "Fake_Phishing1772"), a category (exploit, heist,
phishing, malicious_contract) and the file it came from. Standard library only.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

CATEGORY = {
    "etherscan-phish-hack-list": "phishing",
    "etherscan-exploit-list": "exploit",
    "etherscan-heist-list": "heist",
    "phish-hack": "phishing",
    "exploit": "exploit",
    "heist": "heist",
}


def rows(folder: Path):  # type: ignore[no-untyped-def]
    with (folder / "labels_1_etherscan_malicious_labels.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            yield row["banned_address"], row["wallet_tag"], CATEGORY[row["data_source"]], "etherscan_malicious_labels"
    with (folder / "labels_1_malicious_smart_contracts.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            category = CATEGORY.get(row["contract_creator_etherscan_label"], "malicious_contract")
            yield row["contract_address"], row["contract_tag"], category, "malicious_smart_contracts"
            if row["contract_creator"]:
                yield row["contract_creator"], row["contract_creator_tag"], category, "malicious_smart_contracts:creator"
    with (folder / "labels_1_phishing_scams.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            yield row["address"], row["etherscan_tag"], CATEGORY[row["etherscan_labels"]], "phishing_scams"


def main() -> None:
    seen: set[str] = set()
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(["address", "label", "category", "dataset"])
    for address, label, category, dataset in rows(Path(sys.argv[1])):
        key = address.strip().lower()
        if not key or key in seen:
            continue
        seen.add(key)
        out.writerow([key, label.strip() or f"unlabelled {category}", category, dataset])


if __name__ == "__main__":
    main()
