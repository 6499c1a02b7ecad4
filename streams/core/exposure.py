"""Indirect exposure: which addresses received funds 1, 2, ... hops downstream of a seed address.

Pure Python, no Kafka. One :class:`ExposureGraph` per exposure rule (its seeds, service
lists, tokens and hop limit are the rule's), fed with chain transfers in event-time order:

- **Seeds** (hop 0) are the addresses of the rule's seed lists (e.g. the OFAC SDN list).
- A transfer **carries value** when its amount is above zero and it moves the chain's
  native coin or a token whose contract is on the rule's token list. Zero-value calls,
  tokens not on the list (fake tokens with look-alike symbols) and so address-poisoning
  dust carry nothing.
- A receiver becomes **exposed** when a value-carrying transfer reaches it from a seed, or
  from an address already exposed at the transfer's time (time-respecting: funds received
  before the sender was itself exposed are not traced), within ``max_hops``.
- Addresses on the rule's **stop lists** (exchange hot wallets, DEX routers and pools,
  bridges, the exchange's own addresses) are never exposed and pass nothing on.
- **Share** (a proportional, "haircut" reading), from the moment an address became exposed:
  every value-carrying transfer it receives adds its value to ``received``, and
  ``value x share of the sender`` to ``tainted`` (a seed's share is 1). The address's share
  is ``tainted / received``. Value is the transfer's ``usd_value`` where it has one, else its
  amount in its own asset; measures are never added together, and the share reported is
  the highest over the measures the address received. Funds received before it became
  exposed are not known (only exposed addresses are kept), so the share is of what it
  received since.
- Memory holds exposed addresses only; one untouched for ``expire`` (event time) is forgotten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from streams.core.events import format_timestamp
from streams.core.lists import AddressList, ListEntry
from streams.core.rules.kinds import from_epoch_ms
from streams.core.transfers import Transfer

ONE = Decimal(1)
#: Transfer ids remembered per exposed address to count a resent transfer once.
MAX_TAKEN = 64
#: Changes of share remembered per exposed address, to read the share as of an event's time.
MAX_SHARES = 16


@dataclass(frozen=True, slots=True)
class Hop:
    """One transfer on the path from a seed."""

    from_address: str
    to_address: str
    tx_hash: str
    at_ms: int
    #: The amount moved, as a decimal string, and its asset ("" in state written before amounts were kept).
    amount: str = ""
    asset: str = ""

    def as_evidence(self) -> dict[str, str]:
        """The hop as an alert shows it."""
        when = format_timestamp(from_epoch_ms(self.at_ms))
        shown = {"from": self.from_address, "to": self.to_address, "tx_hash": self.tx_hash, "time": when}
        if self.amount:
            shown |= {"amount": self.amount, "asset": self.asset}
        return shown


@dataclass(frozen=True, slots=True)
class Seed:
    """Where an exposure starts: a listed address and its list entry."""

    address: str
    list_id: str
    entry: ListEntry
    address_list: AddressList
    #: The address in its matching form (how the list and the persisted state know it).
    entry_key: str


@dataclass(slots=True)
class Exposure:
    """What is known of one exposed address."""

    seed: Seed
    hops: int
    since_ms: int
    path: tuple[Hop, ...]
    received: dict[str, Decimal] = field(default_factory=dict)
    tainted: dict[str, Decimal] = field(default_factory=dict)
    last_ms: int = 0
    #: The latest transfers taken in (event ids, oldest first): a transfer seen twice (a
    #: resend, or a record re-processed after a crash) is counted once.
    taken: dict[str, None] = field(default_factory=dict)
    #: The share after each transfer that changed it, as (transfer time ms, share), oldest
    #: first and the latest :data:`MAX_SHARES` only: the share as of an event's time, for a
    #: worker that learns of a deposit after later transfers (see :meth:`share_at`).
    shares: list[tuple[int, Decimal]] = field(default_factory=list)

    @property
    def share(self) -> Decimal:
        """The highest ``tainted / received`` over the measures this address received."""
        best = Decimal(0)
        for measure, total in self.received.items():
            if total > 0:
                best = max(best, self.tainted.get(measure, Decimal(0)) / total)
        return min(best, ONE)

    def share_at(self, at_ms: int) -> Decimal:
        """The share as of ``at_ms``: after the transfers up to then (the oldest remembered if older)."""
        shares = self.shares
        if not shares or shares[-1][0] <= at_ms:
            return self.share
        found = shares[0][1]
        for when, share in shares:
            if when > at_ms:
                break
            found = share
        return found

    def take(self, transfer_id: str, measure: str, value: Decimal, sender_share: Decimal, at_ms: int) -> bool:
        """Add one received transfer to the running totals; False if it was taken already."""
        if transfer_id in self.taken:
            return False
        self.taken[transfer_id] = None
        if len(self.taken) > MAX_TAKEN:
            del self.taken[next(iter(self.taken))]
        self.received[measure] = self.received.get(measure, Decimal(0)) + value
        if sender_share:
            self.tainted[measure] = self.tainted.get(measure, Decimal(0)) + value * sender_share
        self.last_ms = max(self.last_ms, at_ms)
        share = self.share
        if not self.shares or self.shares[-1][1] != share:
            self.shares.append((at_ms, share))
            if len(self.shares) > MAX_SHARES:
                del self.shares[0]
        return True


@dataclass(frozen=True)
class ExposureConfig:
    """An exposure rule's parameters, compiled: which lists seed, stop and carry value."""

    seeds: tuple[AddressList, ...]
    stops: tuple[AddressList, ...]
    tokens: AddressList | None
    max_hops: int
    expire_ms: int

    def seed_of(self, address: str) -> Seed | None:
        """The seed entry of a normalised address, if it is on a seed list."""
        for address_list in self.seeds:
            entry = address_list.entries.get(address)
            if entry is not None:
                return Seed(entry.address, address_list.info.id, entry, address_list, address)
        return None

    def stops_at(self, address: str) -> bool:
        """Whether a normalised address is a service (or the exchange's own) and ends propagation."""
        for address_list in self.stops:
            if address in address_list.entries:
                return True
        return False

    def carries_value(self, transfer: Transfer) -> bool:
        """A transfer of more than zero, of the native coin or a listed token."""
        if transfer.amount <= 0:
            return False
        token = transfer.token
        return token is None or (self.tokens is not None and self.tokens.get(token) is not None)


@dataclass
class ExposureGraph:
    """One exposure rule's exposed addresses (normalised address -> exposure)."""

    exposed: dict[str, Exposure] = field(default_factory=dict)

    def sender_view(self, config: ExposureConfig, address: str, at_ms: int) -> tuple[Exposure | None, Seed | None]:
        """The exposure (or seed) of a sender at ``at_ms``: exposed at or before it."""
        seed = config.seed_of(address)
        if seed is not None:
            return None, seed
        found = self.exposed.get(address)
        if found is not None and found.since_ms <= at_ms:
            return found, None
        return None, None

    def observe(self, config: ExposureConfig, transfer: Transfer) -> Exposure | None:
        """Take one transfer in; return the receiver's exposure if this transfer created it."""
        if not config.carries_value(transfer):
            return None
        sender, receiver, t = transfer.sender, transfer.receiver, transfer.epoch_ms
        current = self.exposed.get(receiver)
        upstream, seed = self.sender_view(config, sender, t)
        if current is None and upstream is None and seed is None:
            return None  # the usual case: neither side has anything to do with a seed
        if config.stops_at(receiver) or config.stops_at(sender) or config.seed_of(receiver) is not None:
            return None
        measure, value = _measure(transfer)
        hop = Hop(transfer.from_address, transfer.to_address, transfer.tx_hash, t, str(transfer.amount), transfer.asset)
        if seed is not None:
            reach: tuple[Seed, int, tuple[Hop, ...], Decimal] | None = (seed, 1, (hop,), ONE)
        elif upstream is not None and upstream.hops < config.max_hops:
            reach = (upstream.seed, upstream.hops + 1, (*upstream.path, hop), upstream.share)
        else:
            reach = None
        if current is None:
            if reach is None:
                return None
            origin, hops, path, share = reach
            created = Exposure(origin, hops, t, path, last_ms=t)
            created.take(transfer.event_id, measure, value, share, t)
            self.exposed[receiver] = created
            return created
        share = reach[3] if reach is not None else Decimal(0)
        if not current.take(transfer.event_id, measure, value, share, t):
            return None
        if reach is not None and reach[1] < current.hops:
            current.seed, current.hops, current.path = reach[0], reach[1], reach[2]  # a shorter route is the one shown
        return None

    def expire(self, now_ms: int, expire_ms: int) -> list[str]:
        """Forget addresses untouched for ``expire_ms`` before ``now_ms`` (event time); which."""
        stale = [address for address, found in self.exposed.items() if found.last_ms < now_ms - expire_ms]
        for address in stale:
            del self.exposed[address]
        return stale


def _measure(transfer: Transfer) -> tuple[str, Decimal]:
    """The value a transfer carries and what it is measured in (USD, else its own asset)."""
    if transfer.usd_value is not None:
        return "USD", transfer.usd_value
    return f"{transfer.chain}:{transfer.token or 'native'}", transfer.amount


def exposure_evidence(exposure: Exposure, address: str, config_max_hops: int, share: Decimal) -> dict[str, Any]:
    """What an alert shows of an exposure: entity, list, hops, ``share`` and the whole path."""
    seed = exposure.seed
    return {
        "address": address,
        "entity": seed.entry.label or "an unnamed holder",
        "seed_address": seed.address,
        "list": seed.address_list.info.as_evidence(),
        "entry": seed.entry.as_evidence(),
        "hops": exposure.hops,
        "max_hops": config_max_hops,
        "share": str(share.quantize(Decimal("0.0001"))),
        "exposed_since": format_timestamp(from_epoch_ms(exposure.since_ms)),
        "path": [hop.as_evidence() for hop in exposure.path],
    }
