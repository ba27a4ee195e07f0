"""Where suggestions are computed: a provider. The default is local and offline.

A deployment that prefers an external model endpoint implements `Provider` (say, an HTTP
client of its inference service) and names it in HUB_WORKFLOW_INTELLIGENCE_PROVIDER;
nothing else changes: the worker calls the provider, stores what it answers with the
`model_version` it reports, and people accept or reject it as before. Nothing in Hub
requires a network for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from subgraphs.workflow.intelligence import classifier, fields, summary


class Provider(Protocol):
    name: str

    def train(self, examples: Sequence[classifier.Example]) -> bytes:
        """A classifier learned from an organization's labelled examples, as opaque bytes
        (stored per organization and version); NotEnoughExamples when there are too few."""
        ...

    def classify(self, model: bytes, text: str) -> classifier.Classification: ...

    def summarize(self, text: str) -> summary.Summary: ...

    def extract_fields(self, text: str) -> list[fields.KeyField]: ...


class LocalProvider:
    """scikit-learn models trained and run in the worker process."""

    name = classifier.ALGORITHM
    summary_sentences = 3

    def train(self, examples: Sequence[classifier.Example]) -> bytes:
        return classifier.TextClassifier.train(examples).to_bytes()

    def classify(self, model: bytes, text: str) -> classifier.Classification:
        return classifier.TextClassifier.from_bytes(model).classify(text)

    def summarize(self, text: str) -> summary.Summary:
        return summary.summarize(text, self.summary_sentences)

    def extract_fields(self, text: str) -> list[fields.KeyField]:
        return fields.extract(text)


PROVIDERS: dict[str, type[Provider]] = {"local": LocalProvider}


def provider_named(name: str) -> Provider:
    try:
        return PROVIDERS[name]()
    except KeyError:
        raise ValueError(f"no intelligence provider {name!r}; known: {sorted(PROVIDERS)}") from None
