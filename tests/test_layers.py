"""Imports run downward and never in circles: demo -> server/emulator -> filtering_api -> aik (grimp).

Every import counts, including those inside functions (an import circle is a design circle even when
it is deferred to run time); imports under `if TYPE_CHECKING:` do not, as they never run.
"""

from __future__ import annotations

import graphlib
from functools import cache

import grimp
import pytest

PACKAGES = ("aik", "filtering_api", "filtering_server", "ad_server_emulator", "stacks", "demo")


@cache
def _graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True, cache_dir=None)


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("aik", "filtering_api"),
        ("aik", "filtering_server"),
        ("aik", "ad_server_emulator"),
        ("aik", "demo"),
        ("aik", "stacks"),
        ("filtering_server", "demo"),
        ("ad_server_emulator", "demo"),
        ("filtering_server", "ad_server_emulator"),
        ("ad_server_emulator", "filtering_server"),  # the emulator's image has neither numba nor xgboost
        ("filtering_api", "filtering_server"),
        ("filtering_api", "ad_server_emulator"),
        ("filtering_api", "demo"),
        ("stacks", "demo"),
    ],
)
def test_a_lower_layer_never_imports_a_higher_one(importer: str, imported: str) -> None:
    chains = _graph().find_shortest_chains(importer=importer, imported=imported, as_packages=True)
    assert not chains, f"{importer} reaches {imported}: " + "; ".join(" -> ".join(c) for c in chains)


def _cycle(edges: dict[str, set[str]]) -> list[str]:
    """One import circle (first module repeated at the end), or [] (stdlib graphlib finds it)."""
    try:
        graphlib.TopologicalSorter(edges).prepare()
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return []


def test_no_module_imports_itself_through_others() -> None:
    graph = _graph()
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    cycle = _cycle(edges)
    assert not cycle, " -> ".join(cycle)


def test_the_cycle_finder_finds_a_circle() -> None:
    circle = _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
    assert sorted(set(circle)) == ["a", "b", "c"] and circle[0] == circle[-1]
