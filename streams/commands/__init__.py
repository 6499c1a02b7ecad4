"""The ``sentinel`` command line (:mod:`streams.commands.cli`)."""
