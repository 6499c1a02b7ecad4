from __future__ import annotations

import pytest

from streams.core.chains import normalise_address


@pytest.mark.parametrize(
    ("address", "key"),
    [
        # EVM hex: case-insensitive (EIP-55 mixed case and all-lower are the same address)
        ("0x098B716B8Aaf21512996dC57EB0615e2383E2f96", "0x098b716b8aaf21512996dc57eb0615e2383e2f96"),
        ("0x098b716b8aaf21512996dc57eb0615e2383e2f96", "0x098b716b8aaf21512996dc57eb0615e2383e2f96"),
        # bech32: case-insensitive, canonical lower case
        ("BC1QSACZ6V3P3Z8HZ2PNPGNJ4RJLHWYH6RHHPRZDCZ", "bc1qsacz6v3p3z8hz2pnpgnj4rjlhwyh6rhhprzdcz"),
        ("ltc1qsacz6v3p3z8hz2pnpgnj4rjlhwyh6rhhprzdcz", "ltc1qsacz6v3p3z8hz2pnpgnj4rjlhwyh6rhhprzdcz"),
        # base58 (Bitcoin legacy, Tron): case-sensitive, kept as is
        ("1FfmbHfnpaZjKFvyi1okTjJJusN455paPH", "1FfmbHfnpaZjKFvyi1okTjJJusN455paPH"),
        ("TWBAPzpPiZarfVsY2BLXeaLhNHurn4wkWG", "TWBAPzpPiZarfVsY2BLXeaLhNHurn4wkWG"),
        # surrounding white space is never part of an address
        ("  0xABCDEF0000000000000000000000000000000000\n", "0xabcdef0000000000000000000000000000000000"),
    ],
)
def test_normalise_by_format(address: str, key: str) -> None:
    assert normalise_address(address) == key


def test_base58_case_differences_stay_distinct() -> None:
    assert normalise_address("1FfmbHfnpaZjKFvyi1okTjJJusN455paPH") != normalise_address(
        "1ffmbhfnpazjkfvyi1oktjjjusn455papH"
    )


def test_mixed_case_bech32_is_not_folded() -> None:
    # Mixed case is invalid bech32: not folding it keeps it from matching a real entry.
    mixed = "bc1QSACZ6v3p3z8hz2pnpgnj4rjlhwyh6rhhprzdcz"
    assert normalise_address(mixed) == mixed
