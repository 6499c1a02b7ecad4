"""Known chains and how their addresses are normalised for matching.

A list entry does not say which chain it belongs to (OFAC's asset label is not the
chain: the USDT label holds Tron, EVM and Omni addresses), so normalisation is by the
address's *format*, not by a chain label: EVM hex is case-insensitive, bech32 is
case-insensitive and canonical in lower case, base58 (Bitcoin legacy, Tron) is
case-sensitive and kept as is. The original spelling is always kept for display.
"""

from __future__ import annotations

import re
from enum import StrEnum


class ChainFamily(StrEnum):
    """How a chain spells its addresses."""

    EVM = "evm"
    UTXO = "utxo"
    TRON = "tron"
    OTHER = "other"


#: Chain names accepted in events (lower case). Adding a chain is a data change here.
CHAINS: dict[str, ChainFamily] = {
    "ethereum": ChainFamily.EVM,
    "ethereum_classic": ChainFamily.EVM,
    "bsc": ChainFamily.EVM,
    "arbitrum": ChainFamily.EVM,
    "optimism": ChainFamily.EVM,
    "polygon": ChainFamily.EVM,
    "base": ChainFamily.EVM,
    "avalanche": ChainFamily.EVM,
    "bitcoin": ChainFamily.UTXO,
    "litecoin": ChainFamily.UTXO,
    "bitcoin_cash": ChainFamily.UTXO,
    "bitcoin_sv": ChainFamily.UTXO,
    "bitcoin_gold": ChainFamily.UTXO,
    "dash": ChainFamily.UTXO,
    "zcash": ChainFamily.UTXO,
    "verge": ChainFamily.UTXO,
    "tron": ChainFamily.TRON,
    "solana": ChainFamily.OTHER,
    "monero": ChainFamily.OTHER,
    "ripple": ChainFamily.OTHER,
}


def check_chain(value: str) -> str:
    """``value`` if it is a known chain name; raises ``ValueError`` naming the known ones otherwise."""
    if value not in CHAINS:
        raise ValueError(f"unknown chain {value[:40]!r}; known: {', '.join(sorted(CHAINS))}")
    return value


_EVM_HEX = re.compile(r"0x[0-9a-fA-F]{40}\Z")
# bech32/bech32m: a human-readable part, the separator "1", then the data charset.
# Mixed case is invalid bech32, so only all-lower or all-upper qualify.
_BECH32 = re.compile(r"(?:[a-z]{1,83}1[02-9ac-hj-np-z]{6,87}|[A-Z]{1,83}1[02-9AC-HJ-NP-Z]{6,87})\Z")
# Cash-address style prefixes (bitcoincash:q...) are case-insensitive too.
_CASHADDR = re.compile(r"(?:bitcoincash|bchtest|ecash):[02-9ac-hj-np-z]{42,}\Z", re.IGNORECASE)


def normalise_address(address: str) -> str:
    """Return the form of ``address`` used as a matching key.

    EVM hex and bech32/cashaddr addresses are case-insensitive and become lower case;
    everything else (base58, Monero, Ripple, ...) is case-sensitive and kept as is.
    Surrounding white space is never part of an address.
    """
    value = address.strip()
    if _EVM_HEX.match(value) or _BECH32.match(value) or _CASHADDR.match(value):
        return value.lower()
    return value
