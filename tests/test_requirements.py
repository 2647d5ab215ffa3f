"""Each pin has one home: requirements.txt holds every runtime pin (Spaces installs it), the
slim serving install names packages that it constrains, and the optional files pin only what
no other file does. A pin that drifts, or one written twice, fails here and so in CI."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENT = re.compile(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(==\s*\S+)?\s*$")


def read(name: str) -> tuple[list[str], dict[str, str | None]]:
    """A requirements file's option lines (-r, -c) and its packages, each to its pin or None."""
    options, packages = [], {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("-"):
            options.append(line)
            continue
        match = REQUIREMENT.match(line)
        assert match, f"{name}: cannot read {line!r}"
        key = match.group(1).lower().replace("_", "-")
        assert key not in packages, f"{name} names {key} twice"
        packages[key] = match.group(3)
    return options, packages


def test_every_package_is_pinned_in_exactly_one_file():
    homes: dict[str, list[str]] = {}
    for path in sorted(ROOT.glob("requirements*.txt")):
        for package, pin in read(path.name)[1].items():
            if pin is not None:
                homes.setdefault(package, []).append(path.name)
    twice = {package: files for package, files in homes.items() if len(files) > 1}
    assert not twice, f"pinned in more than one file (keep the pin in one): {twice}"


def test_the_slim_install_takes_its_versions_from_requirements_txt():
    options, packages = read("requirements-serve.txt")
    assert options == ["-c requirements.txt"]
    runtime = read("requirements.txt")[1]
    pinned = [package for package, pin in packages.items() if pin is not None]
    assert not pinned, f"requirements-serve.txt pins {pinned}: pin them in requirements.txt"
    missing = sorted(set(packages) - set(runtime))
    assert not missing, f"requirements-serve.txt names {missing}, unpinned in requirements.txt"
    assert "torch" not in packages and "transformers" not in packages  # the point of slim


def test_every_file_pins_exactly():
    for path in sorted(ROOT.glob("requirements*.txt")):
        options, packages = read(path.name)
        if any(option.startswith("-c") for option in options):
            continue  # constrained: requirements-serve.txt, tested above
        loose = [package for package, pin in packages.items() if pin is None]
        assert not loose, f"{path.name} leaves {loose} unpinned: pin each with =="
