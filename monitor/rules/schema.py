"""The shape of rule files, as pydantic models (unknown keys are errors).

The loader validates YAML data against these and maps every error back to file:line:column.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Severity = Literal["info", "low", "medium", "high", "critical"]
SEVERITIES: tuple[str, ...] = ("info", "low", "medium", "high", "critical")


class ExampleFile(BaseModel):
    """An example article with a title: its text inline (`text:`) or kept in a file relative to the rule file."""

    model_config = ConfigDict(extra="forbid")

    file: str = ""
    text: str = ""
    title: str = ""

    @model_validator(mode="after")
    def _one_source(self) -> "ExampleFile":
        if bool(self.file) == bool(self.text):
            raise ValueError("an example gives either 'file' or 'text' (with an optional 'title')")
        return self


class Examples(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    match: list[str | ExampleFile] = Field(default_factory=list)
    no_match: list[str | ExampleFile] = Field(default_factory=list)


class FieldSpec(BaseModel):
    """A structured field of a match taken from the entities that made the rule fire (donors, systems, ...).

    Values come from the evidence sentences. `preceded_by` / `followed_by` keep only entities next to one of those
    phrases, `not_preceded_by` / `not_followed_by` drop those next to one; `exclude` drops values already taken by other fields; `fallback` kinds are used when `entity` finds none.
    """

    model_config = ConfigDict(extra="forbid")

    entity: str | list[str]
    fallback: str | list[str] = Field(default_factory=list)
    preceded_by: list[str] = Field(default_factory=list)
    followed_by: list[str] = Field(default_factory=list)
    not_preceded_by: list[str] = Field(default_factory=list)
    not_followed_by: list[str] = Field(default_factory=list)  # e.g. "U.S. officials said": a source, not a donor
    exclude: list[str] = Field(default_factory=list)
    single: bool = False  # one value (or null) instead of a list
    required: bool = False  # the rule fires only when this field has a value
    within: int = Field(default=0, ge=0, le=10)  # also look in this many sentences after the evidence sentence
    # a query: of those sentences, skip the ones where it holds ("@background": a total so far is not the package's)
    within_not: str | None = None
    fallback_any: bool = False  # nothing next to the given phrases: take any value (not taken by `exclude`)
    subject_before: list[str] = Field(default_factory=list)  # in that fallback, a value these follow is the subject
    # languages in which, of two values next to each other (at most an article or a preposition between:
    # "schickt Deutschland der Ukraine", "skickar Sverige Ukraina"), the second is this field's: the first is the
    # subject its verb stands before
    second_of_two: list[str] = Field(default_factory=list)
    # of the `preceded_by` phrases, those whose values count only after the values next to the others in a window
    # (a state right after a giving verb may be its subject: "kündigten die USA ... für die Ukraine an")
    second_choice: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _second_choice_is_preceded_by(self) -> "FieldSpec":
        missing = [p for p in self.second_choice if p not in self.preceded_by]
        if missing:
            raise ValueError(f"second_choice names {', '.join(map(repr, missing))}, which preceded_by does not list")
        return self

    def kinds(self) -> list[str]:
        return [self.entity] if isinstance(self.entity, str) else list(self.entity)

    def fallback_kinds(self) -> list[str]:
        return [self.fallback] if isinstance(self.fallback, str) else list(self.fallback)


class RuleSpec(BaseModel):
    """One rule as written: metadata, a query (or the keyword form all/any/none), fields and examples."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    title: str = ""
    description: str = ""
    severity: Severity = "medium"
    channels: list[str] = Field(default_factory=list)
    enabled: bool = True
    owner: str = ""
    query: str | None = None
    all_: list[str] = Field(default_factory=list, alias="all")
    any_: list[str] = Field(default_factory=list, alias="any")
    none: list[str] = Field(default_factory=list)
    fields: dict[str, FieldSpec] = Field(default_factory=dict)
    examples: Examples = Field(default_factory=Examples)

    @model_validator(mode="after")
    def _one_form(self) -> "RuleSpec":
        keyword = bool(self.all_ or self.any_ or self.none)
        if self.query is not None and keyword:
            raise ValueError("use either 'query' or the keyword lists all/any/none, not both")
        if self.query is None and not (self.all_ or self.any_):
            raise ValueError("a rule needs a 'query' or keyword lists 'all' / 'any'")
        return self


class RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[RuleSpec] = Field(min_length=1)
