"""Workflow definitions: the declarative language, parsed and validated with line numbers.

A definition is YAML (or JSON, which YAML reads too):

    key: document.review
    name: Review a document
    subject: Document                 # or User
    initial: submitted
    starts_on:                        # optional: a domain event starts it
      event: content.document_uploaded
      where: {document_type: tender}
      subject_id: document_id         # the event data field holding the subject's id
    states:
      submitted:
        on_enter: [{notify: {to: [data.owner_id], title: "Review {title}"}}]
        tasks:
          - name: review
            title: Review {title}
            assignee: {role: reviewer}          # or {user: data.reviewer_id}
            outcomes: [approve, reject]         # actions that complete it
            due: P2D
            escalate_to: admin                  # the role an overdue task moves to
      approved: {final: true}
    transitions:
      - {name: approve, from: submitted, to: approved, action: true, roles: [reviewer]}
      - {name: expire, from: submitted, to: expired, after: P30D}
      - {name: close, from: open, to: closed, at: data.deadline}
      - {name: revise, from: submitted, to: submitted, event: content.document_version_added,
         subject_id: document_id}

Guards: `roles` (the actor must hold one) and `when` (conditions on instance data:
`{field, op, value}`, ops eq ne gt ge lt le in present). Actions (`actions` of a
transition, `on_enter` of a state): `notify` (an event communication turns into
notifications), `emit` (any domain event), `set` (instance data) and `request` (a call to
another service's API, run after the commit and retryable by an admin).

Errors point at the offending line and key path, e.g. `line 12, states.draft.tasks[0].due:
not an ISO 8601 duration`.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from subgraphs.common.errors import BadInput

KEY = re.compile(r"^[a-z][a-z0-9_.-]{0,99}$")
NAME = re.compile(r"^[a-z][a-z0-9_-]{0,99}$")
DURATION = re.compile(
    r"^P(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)
TEMPLATES = Path(__file__).parent / "templates"
MAX_SOURCE = 200_000


def parse_duration(text: str) -> timedelta:
    match = DURATION.match(text)
    if not match or text in ("P", "PT") or text.endswith("T"):
        raise ValueError(f"{text!r} is not an ISO 8601 duration such as P3D, PT4H or PT30S")
    parts = {name: float(value) for name, value in match.groupdict().items() if value}
    return timedelta(**parts)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _duration(value: str | None) -> str | None:
    if value is not None:
        parse_duration(value)
    return value


def _data_ref(value: str) -> str:
    if not value.startswith("data.") or len(value) == 5:
        raise ValueError(f"{value!r} must name an instance data field: data.<field>")
    return value


class Assignee(Strict):
    user: str | None = Field(
        default=None, description="data.<field> holding a user id, or $starter / $actor"
    )
    role: str | None = None

    @model_validator(mode="after")
    def one_of(self) -> Assignee:
        if (self.user is None) == (self.role is None):
            raise ValueError("name exactly one of user or role")
        if self.user is not None and self.user not in ("$starter", "$actor"):
            _data_ref(self.user)
        return self


class TaskSpec(Strict):
    name: str
    title: str
    assignee: Assignee
    outcomes: list[str] = Field(min_length=1)
    due: str | None = None
    escalate_to: str | None = None

    _check_due = field_validator("due")(classmethod(lambda cls, v: _duration(v)))


class Condition(Strict):
    field: str
    op: Literal["eq", "ne", "gt", "ge", "lt", "le", "in", "present"] = "eq"
    value: Any = None


class Notify(Strict):
    to: list[str] = Field(min_length=1)
    title: str
    body: str = ""

    @field_validator("to")
    @classmethod
    def recipients(cls, value: list[str]) -> list[str]:
        for item in value:
            if item not in ("$starter", "$actor"):
                _data_ref(item)
        return value


class Emit(Strict):
    type: str = Field(pattern=r"^[a-z][a-z0-9_.-]*$")
    data: dict[str, Any] = Field(default_factory=dict)


class Request(Strict):
    service: Literal["identity", "content", "communication"]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    path: str = Field(pattern=r"^/api/v1/")
    body: dict[str, Any] | None = None


class Action(Strict):
    notify: Notify | None = None
    emit: Emit | None = None
    set: dict[str, Any] | None = None
    request: Request | None = None

    @model_validator(mode="after")
    def exactly_one(self) -> Action:
        given = [name for name in ("notify", "emit", "set", "request") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError("an action is exactly one of notify, emit, set or request")
        return self


class StateSpec(Strict):
    final: bool = False
    on_enter: list[Action] = Field(default_factory=list)
    tasks: list[TaskSpec] = Field(default_factory=list)


class TransitionSpec(Strict):
    name: str
    from_: list[str] = Field(alias="from")
    to: str
    action: bool = False
    event: str | None = None
    subject_id: str | None = None  # for `event`: the event data field naming the subject
    after: str | None = None
    at: str | None = None
    roles: list[str] = Field(default_factory=list)
    when: list[Condition] = Field(default_factory=list)
    actions: list[Action] = Field(default_factory=list)
    # Fields of the instance data an action may set (typed by the caller with `data`).
    accepts: list[str] = Field(default_factory=list)

    _check_after = field_validator("after")(classmethod(lambda cls, v: _duration(v)))

    @field_validator("from_", mode="before")
    @classmethod
    def one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("at")
    @classmethod
    def at_field(cls, value: str | None) -> str | None:
        return _data_ref(value) if value is not None else None

    @model_validator(mode="after")
    def one_trigger(self) -> TransitionSpec:
        triggers = [
            self.action,
            self.event is not None,
            self.after is not None,
            self.at is not None,
        ]
        if sum(triggers) != 1:
            raise ValueError("a transition has exactly one trigger: action, event, after or at")
        return self

    @property
    def trigger(self) -> str:
        return "action" if self.action else "event" if self.event else "timer"


class StartsOn(Strict):
    event: str
    where: dict[str, Any] = Field(default_factory=dict)
    subject_id: str


class Definition(Strict):
    key: str
    name: str
    description: str = ""
    subject: Literal["Document", "User"] = "Document"
    initial: str
    start_roles: list[str] = Field(default_factory=list)
    starts_on: StartsOn | None = None
    states: dict[str, StateSpec] = Field(min_length=1)
    transitions: list[TransitionSpec] = Field(default_factory=list)

    @field_validator("key")
    @classmethod
    def key_format(cls, value: str) -> str:
        if not KEY.match(value):
            raise ValueError("lower-case letters, digits, '_', '.' or '-', starting with a letter")
        return value

    def transitions_from(self, state: str) -> list[TransitionSpec]:
        return [t for t in self.transitions if state in t.from_ or "*" in t.from_]

    def transition(self, name: str) -> TransitionSpec | None:
        return next((t for t in self.transitions if t.name == name), None)


def _problems_of_references(definition: Definition) -> list[tuple[tuple[Any, ...], str]]:
    """What pydantic cannot see: names that must refer to states and transitions."""
    problems: list[tuple[tuple[Any, ...], str]] = []
    states = set(definition.states)
    if definition.initial not in states:
        problems.append((("initial",), f"{definition.initial!r} is not one of the states"))
    names: set[str] = set()
    for index, transition in enumerate(definition.transitions):
        where = ("transitions", index)
        if not NAME.match(transition.name):
            problems.append(((*where, "name"), "lower-case letters, digits, '_' or '-'"))
        if transition.name in names:
            problems.append(((*where, "name"), f"{transition.name!r} is defined twice"))
        names.add(transition.name)
        for source in transition.from_:
            if source != "*" and source not in states:
                problems.append(((*where, "from"), f"{source!r} is not one of the states"))
            elif source in states and definition.states[source].final:
                problems.append(((*where, "from"), f"{source!r} is final: nothing leaves it"))
        if transition.to not in states:
            problems.append(((*where, "to"), f"{transition.to!r} is not one of the states"))
        if transition.event and not transition.subject_id:
            problems.append(((*where, "subject_id"), "an event transition names subject_id"))
    for state_name, state in definition.states.items():
        actions = {t.name for t in definition.transitions_from(state_name) if t.action}
        for index, task in enumerate(state.tasks):
            for outcome in task.outcomes:
                if outcome not in actions:
                    problems.append(
                        (
                            ("states", state_name, "tasks", index, "outcomes"),
                            f"{outcome!r} is not an action transition from {state_name!r}",
                        )
                    )
    return problems


# --- reading the text, with the line of every key ------------------------------------


def _lines(node: yaml.Node, path: tuple[Any, ...], into: dict[tuple[Any, ...], int]) -> None:
    into[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = key.value
            into[(*path, name)] = key.start_mark.line + 1
            _lines(value, (*path, name), into)
            # pydantic reports `from` under its alias; keep both spellings
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _lines(item, (*path, index), into)


def _line_of(lines: dict[tuple[Any, ...], int], path: tuple[Any, ...]) -> int | None:
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())


def _dotted(path: tuple[Any, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


class DefinitionInvalid(BadInput):
    """`problems`: [{line, path, message}], each pointing at the offending key."""


def parse(source: str) -> Definition:
    """The definition in `source` (YAML or JSON); DefinitionInvalid listing every problem."""
    if len(source) > MAX_SOURCE:
        raise DefinitionInvalid(f"a definition has at most {MAX_SOURCE} characters", problems=[])
    try:
        node = yaml.compose(source, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(source)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark else None
        problem = {"line": line, "path": "", "message": str(getattr(error, "problem", error))}
        raise DefinitionInvalid(_summary([problem]), problems=[problem]) from None
    if not isinstance(raw, dict) or node is None:
        problem = {"line": 1, "path": "", "message": "a definition is a mapping of keys"}
        raise DefinitionInvalid(_summary([problem]), problems=[problem])
    lines: dict[tuple[Any, ...], int] = {}
    _lines(node, (), lines)
    try:
        definition = Definition.model_validate(raw)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            path = tuple("from" if part == "from_" else part for part in item["loc"])
            # pydantic adds the failing union/validator name for model validators; drop it
            path = tuple(p for p in path if not (isinstance(p, str) and p.startswith("function-")))
            problems.append(
                {
                    "line": _line_of(lines, path),
                    "path": _dotted(path),
                    "message": item["msg"].removeprefix("Value error, "),
                }
            )
        raise DefinitionInvalid(_summary(problems), problems=problems) from None
    problems = [
        {"line": _line_of(lines, path), "path": _dotted(path), "message": message}
        for path, message in _problems_of_references(definition)
    ]
    if problems:
        raise DefinitionInvalid(_summary(problems), problems=problems)
    return definition


def _summary(problems: list[dict[str, Any]]) -> str:
    first = problems[0] if problems else {"line": None, "path": "", "message": "invalid"}
    where = f"line {first['line']}" if first["line"] else "definition"
    if first["path"]:
        where += f", {first['path']}"
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return f"invalid definition: {where}: {first['message']}{more}"


def from_spec(spec: dict[str, Any]) -> Definition:
    """A stored definition (validated when it was published)."""
    return Definition.model_validate(spec)


def to_spec(definition: Definition) -> dict[str, Any]:
    return json.loads(definition.model_dump_json(by_alias=True, exclude_none=True))


def builtin_source(key: str) -> str | None:
    """The text of a built-in template (templates/<key>.yaml), None when there is none."""
    for path in sorted(TEMPLATES.glob("*.yaml")):
        source = path.read_text()
        if (yaml.safe_load(source) or {}).get("key") == key:
            return source
    return None


def builtin_keys() -> list[str]:
    return sorted(
        str((yaml.safe_load(path.read_text()) or {}).get("key"))
        for path in TEMPLATES.glob("*.yaml")
    )
