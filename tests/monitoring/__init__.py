"""Tests of aik.monitoring (a package so its modules can share the simulated run of conftest)."""
