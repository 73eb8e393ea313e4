"""The report's sections, in page order: a registry, so a new section is one small module and one line here.

Each section module defines `SPEC = SectionSpec(key, title, build)`; `build(ctx)` returns a `Section`, or None
when its inputs are absent (the section is then left out). Sections read through the `ReportContext`, so their
inputs are recorded, and know nothing about HTML, Markdown or files beside the report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from katcli.report.context import ReportContext
from katcli.report.document import Section


@dataclass(frozen=True)
class SectionSpec:
    key: str
    title: str
    build: Callable[[ReportContext], Section | None]


def registry() -> tuple[SectionSpec, ...]:
    from katcli.report.sections import density, policies, provenance, reward_models

    return (provenance.SPEC, density.SPEC, reward_models.SPEC, policies.SPEC)
