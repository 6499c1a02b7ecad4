"""The Kafka shell around the core: the Faust worker, its commit protocol, sinks, clients and routes.

:mod:`streams.shell.app` is the worker; :mod:`streams.shell.commit` the at-least-once
protocol; :mod:`streams.shell.faust_adapter` every private name of Faust it relies on.
"""
