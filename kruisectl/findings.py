"""The finding: one checked fact with its severity and what to do about it.

JSON/YAML schema (stable, for scripts and alerting): ``check`` (a fixed id), ``level``
(ok | info | warning | error), ``message``, ``remediation`` (empty when ok) and ``evidence``
(the facts the verdict rests on).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

LEVELS = ("ok", "info", "warning", "error")


@dataclass
class Finding:
    check: str
    level: str
    message: str
    remediation: str = ""
    evidence: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}")

    def to_dict(self) -> dict:
        return asdict(self)


def worst(findings: list[Finding]) -> str:
    return max((f.level for f in findings), key=LEVELS.index, default="ok")


def failing(findings: list[Finding], fail_on: str = "error") -> list[Finding]:
    """Findings at or above ``fail_on`` (error, or warning with --fail-on warning)."""
    threshold = LEVELS.index(fail_on)
    return [f for f in findings if LEVELS.index(f.level) >= threshold]


def grade(findings: list[Finding]) -> tuple[int, str]:
    """A score out of 100 and a letter, popeye-style: errors cost 25, warnings 8, infos 0."""
    score = max(0, 100 - 25 * sum(f.level == "error" for f in findings) - 8 * sum(f.level == "warning" for f in findings))
    letter = "A" if score >= 90 else "B" if score >= 80 else "C" if score >= 70 else "D" if score >= 60 else "F"
    return score, letter


MARKS = {"ok": "ok", "info": "info", "warning": "WARN", "error": "ERROR"}
COLOURS = {"ok": "green", "info": None, "warning": "yellow", "error": "red"}


def findings_table(findings: list[Finding], wide: bool = False) -> str:
    """The table doctor and webhook check print: level, check, finding, fix (and with
    ``wide`` the evidence)."""
    import json

    from .output import colour, table

    headers = ["level", "check", "finding", "fix"] + (["evidence"] if wide else [])
    rows = []
    for f in findings:
        row = [colour(MARKS[f.level], COLOURS[f.level]), f.check, f.message, f.remediation if f.level != "ok" else ""]
        if wide:
            row.append(json.dumps(f.evidence, sort_keys=True, default=str) if f.evidence else "")
        rows.append(row)
    return table(rows, headers)
