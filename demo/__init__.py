"""The kit end to end on one machine: top-level orchestration above the library, the server and the emulator.

It may import everything (`aik`, `filtering_server`, `ad_server_emulator`); nothing imports it. `aik demo`
reaches it through the `aik.commands` entry-point group (see `aik.cli`), not through an import.
"""
