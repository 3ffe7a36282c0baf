"""The ``snn-nas`` command line: one module per sub-command."""
