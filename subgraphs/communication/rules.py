"""Rules mapping domain events to notifications, read from HUB_COMMUNICATION_RULES_FILE."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from subgraphs.communication.templates import Template


class RulesFileError(ValueError):
    pass


@dataclass(frozen=True)
class Rule:
    name: str
    event: str
    template: str
    category: str
    recipient: str | None = None
    recipients: str | None = None
    channels: tuple[str, ...] | None = None
    transactional: bool = False
    subject_type: str | None = None
    subject_id: str | None = None
    contact: dict[str, str] = field(default_factory=dict)

    def recipient_ids(self, data: dict[str, Any]) -> list[str]:
        if self.recipient is not None:
            value = data.get(self.recipient)
            return [str(value)] if value else []
        values = data.get(self.recipients or "") or []
        return [str(v) for v in values] if isinstance(values, list) else []


def load_rules(path: Path, templates: dict[str, Template]) -> list[Rule]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise RulesFileError(f"{path}: {error}") from None
    entries = data.get("rules") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise RulesFileError(f"{path}: expected a list under 'rules'")
    rules = []
    for index, entry in enumerate(entries):
        where = f"{path}: rules[{index}]"
        try:
            template = str(entry["template"])
            subject = entry.get("subject") or {}
            rule = Rule(
                name=str(entry.get("name") or f"{entry['event']}#{index}"),
                event=str(entry["event"]),
                template=template,
                category=str(entry["category"]),
                recipient=entry.get("recipient"),
                recipients=entry.get("recipients"),
                channels=tuple(entry["channels"]) if entry.get("channels") else None,
                transactional=bool(entry.get("transactional", False)),
                subject_type=subject.get("type"),
                subject_id=subject.get("id"),
                contact=dict(entry.get("contact") or {}),
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise RulesFileError(f"{where}: missing or malformed {error}") from None
        if template not in templates:
            raise RulesFileError(f"{where}: unknown template {template!r}")
        if (rule.recipient is None) == (rule.recipients is None):
            raise RulesFileError(f"{where}: give exactly one of recipient, recipients")
        rules.append(rule)
    return rules


@cache
def rules_from(path: Path, templates_path: Path) -> list[Rule]:
    from subgraphs.communication.templates import templates_from

    return load_rules(path, templates_from(templates_path))
