"""What plugin discovery needs from installed packages' metadata, each package read once.

A distribution's METADATA file is a block of email-style headers followed by its long
description, often the whole README; the standard library parses all of it for every
question (``dist.version``, ``dist.metadata``, ``dist.requires``). Discovery asks a dozen
such questions per plugin about the same few packages, and every ``voicekit`` command and
every app start discovers, so this reads the header block only, once per package.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from importlib import metadata

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

__all__ = ["DistributionFacts", "InstalledPackages"]

_END_OF_HEADERS = re.compile(r"\r?\n\r?\n")


def _headers(dist: metadata.Distribution) -> Message | None:
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO")  # egg-info has PKG-INFO
    if not text:
        return None
    return HeaderParser().parsestr(_END_OF_HEADERS.split(text, maxsplit=1)[0])


@dataclass(frozen=True)
class DistributionFacts:
    """The headers of one distribution that discovery reads."""

    name: str | None
    version: str | None
    extras: frozenset[str]
    requires: tuple[Requirement, ...]  # the ones that parse

    def has_extra(self, name: str) -> bool:
        """Whether the distribution offers extra ``name``, compared by normalised names
        (``my_extra`` is ``my-extra``)."""
        wanted = canonicalize_name(name)
        return any(canonicalize_name(e) == wanted for e in self.extras)

    @classmethod
    def of(cls, dist: metadata.Distribution) -> DistributionFacts:
        headers = _headers(dist)
        if headers is None:
            return cls(None, None, frozenset(), _parsed(dist.requires or ()))
        requires = headers.get_all("Requires-Dist")
        return cls(
            name=headers["Name"],
            version=headers["Version"],
            extras=frozenset(headers.get_all("Provides-Extra") or ()),
            # egg-info keeps its requirements in requires.txt, not in the headers
            requires=_parsed(requires if requires is not None else dist.requires or ()),
        )


def _parsed(lines: Iterable[str]) -> tuple[Requirement, ...]:
    parsed: list[Requirement] = []
    for line in lines:
        try:
            parsed.append(Requirement(line))
        except InvalidRequirement:
            continue
    return tuple(parsed)


class InstalledPackages:
    """One discovery pass's view of what is installed, memoised by distribution name.

    Made afresh for each pass, so a package installed between two passes is seen."""

    def __init__(self) -> None:
        self._facts: dict[metadata.Distribution, DistributionFacts] = {}  # by identity
        self._versions: dict[str, str | None] = {}

    def facts(self, dist: metadata.Distribution) -> DistributionFacts:
        found = self._facts.get(dist)
        if found is None:
            found = self._facts[dist] = DistributionFacts.of(dist)
        return found

    def version(self, name: str) -> str | None:
        """The installed version of distribution ``name``, or None when it is not installed."""
        key = canonicalize_name(name)
        if key not in self._versions:
            try:
                dist = metadata.distribution(name)
            except metadata.PackageNotFoundError:
                self._versions[key] = None
            else:
                self._versions[key] = DistributionFacts.of(dist).version or dist.version
        return self._versions[key]

    def satisfies(self, req: Requirement) -> bool:
        version = self.version(req.name)
        if version is None:
            return False
        return not req.specifier or req.specifier.contains(version, prereleases=True)

    def missing_requirements(self, dist: metadata.Distribution, extra: str) -> list[str]:
        """Requirements of ``dist`` (its base ones, plus extra ``extra`` if it has one)
        that are not installed."""
        facts = self.facts(dist)
        env = {"extra": extra if facts.has_extra(extra) else ""}
        missing: list[str] = []
        for req in facts.requires:
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            if not self.satisfies(req):
                missing.append(str(req.name) + str(req.specifier))
        return missing
