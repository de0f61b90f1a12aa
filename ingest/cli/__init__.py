"""The `ingest` command line: one module per command group, thin over the packages.

    main    the group, `run`, `worker`, `enqueue`, `stats`
    feeds   add, remove, enable, feeds, import, export
    items   items, search, subscribe
    dead    dead, dead retry
    common  settings from options and the environment; one error line, not a traceback
"""

__all__: list[str] = []
