"""Notification templates: jinja2 per channel and locale, variables declared and checked.

Rendering is sandboxed and strict (an undefined name is an error, never an empty
string), and happens when a notification is made, so a bad send is refused before anything
is stored or sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jinja2 import StrictUndefined, TemplateError, meta
from jinja2.sandbox import SandboxedEnvironment

from subgraphs.common.errors import BadInput

CHANNEL_PARTS = {"in_app": ("title", "body"), "email": ("subject", "body")}
ALWAYS_AVAILABLE = frozenset({"app_url"})
REDACTED = "[redacted]"

_env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


class TemplatesFileError(ValueError):
    pass


@dataclass(frozen=True)
class Template:
    key: str
    description: str
    variables: tuple[str, ...]
    # channel -> locale -> part ("title", "subject", "body") -> source
    sources: dict[str, dict[str, dict[str, str]]]
    # Variables that are secrets (one-time tokens): only in bodies, and never kept once sent.
    secrets: tuple[str, ...] = ()

    def redacted(self, variables: dict[str, Any]) -> dict[str, Any]:
        return {**variables, **dict.fromkeys(self.secrets, REDACTED)}

    @property
    def channels(self) -> tuple[str, ...]:
        return tuple(self.sources)

    @property
    def locales(self) -> tuple[str, ...]:
        return tuple(sorted({locale for parts in self.sources.values() for locale in parts}))

    def check_variables(self, variables: dict[str, Any], *, strict: bool = True) -> None:
        """Every declared variable given; with `strict`, nothing undeclared either."""
        missing = [name for name in self.variables if name not in variables]
        if missing:
            raise BadInput(
                f"template {self.key} needs the variables {', '.join(missing)}",
                field="variables",
            )
        unknown = sorted(set(variables) - set(self.variables))
        if strict and unknown:
            raise BadInput(
                f"template {self.key} declares no variables {', '.join(unknown)}",
                field="variables",
            )

    def render(
        self, channel: str, locale: str, variables: dict[str, Any], *, default_locale: str
    ) -> dict[str, str]:
        """The parts of `channel` in `locale` (else the default locale, else any)."""
        by_locale = self.sources[channel]
        chosen = (
            by_locale.get(locale) or by_locale.get(default_locale) or next(iter(by_locale.values()))
        )
        try:
            return {
                part: _env.from_string(source).render(**variables).strip()
                for part, source in chosen.items()
            }
        except TemplateError as error:
            raise BadInput(f"template {self.key} failed to render: {error}") from None


def load_templates(path: Path) -> dict[str, Template]:
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise TemplatesFileError(f"{path}: {error}") from None
    entries = data.get("templates") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        raise TemplatesFileError(f"{path}: expected a mapping under 'templates'")
    templates = {}
    for key, entry in entries.items():
        where = f"{path}: templates.{key}"
        if not isinstance(entry, dict):
            raise TemplatesFileError(f"{where}: expected a mapping")
        variables = entry.get("variables", [])
        if not isinstance(variables, list) or not all(isinstance(v, str) for v in variables):
            raise TemplatesFileError(f"{where}.variables: expected a list of names")
        secrets = entry.get("secrets", [])
        if not isinstance(secrets, list) or not set(secrets) <= set(variables):
            raise TemplatesFileError(f"{where}.secrets: expected a list of declared variables")
        sources: dict[str, dict[str, dict[str, str]]] = {}
        for channel, parts in CHANNEL_PARTS.items():
            if channel not in entry:
                continue
            sources[channel] = {}
            for locale, texts in (entry[channel] or {}).items():
                if not isinstance(texts, dict) or set(texts) != set(parts):
                    raise TemplatesFileError(
                        f"{where}.{channel}.{locale}: expected exactly {', '.join(parts)}"
                    )
                for part, source in texts.items():
                    used = _check_source(f"{where}.{channel}.{locale}.{part}", source, variables)
                    if part != "body" and used & set(secrets):
                        # Titles and subjects are stored as they are: no secret in them.
                        raise TemplatesFileError(
                            f"{where}.{channel}.{locale}.{part}: uses a secret variable"
                        )
                sources[channel][locale] = {part: str(texts[part]) for part in parts}
        if not sources:
            raise TemplatesFileError(f"{where}: no channel (in_app, email)")
        templates[key] = Template(
            key, str(entry.get("description", "")), tuple(variables), sources, tuple(secrets)
        )
    return templates


def _check_source(where: str, source: object, declared: list[str]) -> set[str]:
    try:
        used = meta.find_undeclared_variables(_env.parse(str(source)))
    except TemplateError as error:
        raise TemplatesFileError(f"{where}: {error}") from None
    undeclared = sorted(used - set(declared) - ALWAYS_AVAILABLE)
    if undeclared:
        raise TemplatesFileError(f"{where}: uses undeclared variables {', '.join(undeclared)}")
    return set(used)


@cache
def templates_from(path: Path) -> dict[str, Template]:
    return load_templates(path)


def template(templates: dict[str, Template], key: str) -> Template:
    found = templates.get(key)
    if found is None:
        raise BadInput(
            f"unknown template {key!r}; known: {', '.join(sorted(templates))}", field="template"
        )
    return found
