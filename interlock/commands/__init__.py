"""Sub-commands of the ``interlock`` CLI, one module per family (see :mod:`interlock.cli`)."""
