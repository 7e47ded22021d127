"""Advertising Intelligence Kit: the library shared by the notebooks, Spark job, server and emulator."""

__version__ = "0.1.0"
