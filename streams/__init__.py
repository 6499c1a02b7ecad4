"""deposit-sentinel: screens exchange deposits and withdrawals in Kafka and emits freeze alerts.

The package is a pure core (events, address lists, the rule language and its engine)
wrapped by a thin Kafka shell (the Faust app, the alert producer, metrics). Nothing in
the core imports Kafka, so ``backtest`` and ``rules test`` give the same answer as the
live worker.
"""

__version__ = "0.1.0"

#: The rule-file format this engine understands; rule files state the version they need.
ENGINE_VERSION = 1
