"""The pure core: events, lists, rules, screening and alerts, with no Kafka or Faust import.

Everything that decides what an event means and which alerts it raises lives here, so
the worker, ``backtest``, ``rules test`` and ``rescreen`` give the same answer by
construction. ``tests/shell/test_layout.py`` keeps Kafka and Faust out of it.
"""
