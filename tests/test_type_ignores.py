"""Every `# type: ignore[...]` in the kit names its error code and says why (on its line or just above)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("aik", "filtering_api", "filtering_server", "ad_server_emulator", "stacks", "demo")
IGNORE = re.compile(r"#\s*type:\s*ignore(\[[^\]]+\])?(.*)$")


def _unexplained(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    found = []
    for n, line in enumerate(lines):
        m = IGNORE.search(line)
        if not m:
            continue
        reason_here = m.group(2).strip().startswith("#")
        reason_above = n > 0 and lines[n - 1].strip().startswith("#")
        if m.group(1) is None or not (reason_here or reason_above):
            found.append(f"{path}:{n + 1}: {line.strip()}")
    return found


def test_every_type_ignore_names_its_code_and_its_reason() -> None:
    files = [p for package in PACKAGES for p in (ROOT / package).rglob("*.py")]
    assert files
    assert [u for p in files for u in _unexplained(p)] == []


def test_an_ignore_without_a_reason_is_caught(tmp_path: Path) -> None:
    path = tmp_path / "probe.py"
    path.write_text("x = f()  # type: ignore[arg-type]\ny = g()  # type: ignore[arg-type]  # g is untyped\n")
    assert [u.split(":", 2)[1] for u in _unexplained(path)] == ["1"]  # the line without a reason
