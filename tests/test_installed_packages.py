"""Plugin discovery reads package headers only, and reads them the way pip wrote them."""

from __future__ import annotations

from importlib import invalidate_caches, metadata
from pathlib import Path

import pytest

from voicekit.plugins.installed import DistributionFacts, InstalledPackages

LONG_DESCRIPTION = "\n".join(
    ["# A README", "", "Version: 9.9 (a line of prose, not a header)", "Requires-Dist: nope"] * 50
)


def dist_info(site: Path, name: str, version: str, headers: list[str], body: str = "") -> Path:
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True)
    lines = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}", *headers]
    (info / "METADATA").write_text("\n".join(lines) + "\n\n" + body, newline="")
    return info


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    invalidate_caches()
    return path


def test_the_headers_are_read_and_the_long_description_is_not(site: Path) -> None:
    info = dist_info(
        site,
        "acme-voice",
        "1.2",
        [
            "Provides-Extra: fast",
            "Requires-Dist: acme-core>=2",
            'Requires-Dist: uvloop; extra == "fast"',
        ],
        LONG_DESCRIPTION,
    )
    facts = DistributionFacts.of(metadata.PathDistribution(info))
    assert (facts.name, facts.version, facts.extras) == ("acme-voice", "1.2", {"fast"})
    assert [str(r) for r in facts.requires] == ["acme-core>=2", 'uvloop; extra == "fast"']


def test_windows_line_endings_end_the_headers_too(site: Path) -> None:
    info = site / "crlf-1.0.dist-info"
    info.mkdir()
    text = "Metadata-Version: 2.1\r\nName: crlf\r\nVersion: 1.0\r\n\r\nVersion: 2.0\r\n"
    (info / "METADATA").write_bytes(text.encode())
    assert DistributionFacts.of(metadata.PathDistribution(info)).version == "1.0"


def test_an_egg_info_install_keeps_its_requirements_in_requires_txt(site: Path) -> None:
    info = site / "old_style-0.5.egg-info"
    info.mkdir()
    (info / "PKG-INFO").write_text("Metadata-Version: 1.1\nName: old-style\nVersion: 0.5\n")
    (info / "requires.txt").write_text("acme-core>=2\n\n[fast]\nuvloop\n")
    facts = DistributionFacts.of(metadata.PathDistribution(info))
    assert (facts.name, facts.version) == ("old-style", "0.5")
    assert [str(r) for r in facts.requires] == ["acme-core>=2", 'uvloop; extra == "fast"']


def test_missing_requirements_honour_versions_extras_and_names_as_written(site: Path) -> None:
    dist_info(site, "acme_core", "1.5", [], LONG_DESCRIPTION)  # installed, but too old
    dist_info(site, "Acme.Codec", "3.0", [])
    plugin = dist_info(
        site,
        "acme-voice",
        "1.0",
        [
            "Provides-Extra: fast",
            "Requires-Dist: acme-core>=2",
            "Requires-Dist: acme-codec>=3",  # installed as Acme.Codec: the same name
            'Requires-Dist: uvloop-not-here; extra == "fast"',
            'Requires-Dist: only-for-other; extra == "other"',
            "Requires-Dist: this is not a requirement",
        ],
    )
    invalidate_caches()
    installed = InstalledPackages()
    dist = metadata.PathDistribution(plugin)
    assert installed.missing_requirements(dist, "fast") == ["acme-core>=2", "uvloop-not-here"]
    assert installed.missing_requirements(dist, "voice") == ["acme-core>=2"]
    assert installed.version("ACME-core") == "1.5"
    assert installed.version("not-installed-anywhere") is None


def test_a_package_installed_between_two_passes_is_seen_by_the_second(site: Path) -> None:
    plugin = metadata.PathDistribution(
        dist_info(site, "acme-voice", "1.0", ["Requires-Dist: late"])
    )
    assert InstalledPackages().missing_requirements(plugin, "acme") == ["late"]
    dist_info(site, "late", "1.0", [])
    invalidate_caches()
    assert InstalledPackages().missing_requirements(plugin, "acme") == []


def test_an_empty_metadata_file_falls_back_to_pkg_info(site: Path) -> None:
    info = site / "both-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("")
    (info / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: both\nVersion: 1.0\n")
    facts = DistributionFacts.of(metadata.PathDistribution(info))
    assert (facts.name, facts.version) == ("both", "1.0")


def test_an_extra_named_with_underscores_is_the_same_extra(site: Path) -> None:
    plugin = dist_info(
        site,
        "acme-voice",
        "1.0",
        ["Provides-Extra: my-extra", 'Requires-Dist: not-here-either; extra == "my-extra"'],
    )
    missing = InstalledPackages().missing_requirements(
        metadata.PathDistribution(plugin), "my_extra"
    )
    assert missing == ["not-here-either"]
