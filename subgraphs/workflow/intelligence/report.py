"""How well classification does on a labelled corpus: macro-F1 of the model and of a
majority-class baseline, on a stratified held-out part.

    scripts/classification-report [CORPUS.jsonl] [--test-size 0.3] [--seed 0]

The corpus is JSON lines with `text`, `type` and optional `tags`; by default the sample
corpus shipped with the tests (tests/workflow/corpus/documents.jsonl).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sklearn.dummy import DummyClassifier
from sklearn.metrics import classification_report, f1_score
from sklearn.model_selection import train_test_split

from subgraphs.workflow.intelligence.classifier import Example, TextClassifier

DEFAULT_CORPUS = (
    Path(__file__).resolve().parents[3] / "tests" / "workflow" / "corpus" / "documents.jsonl"
)


@dataclass(frozen=True)
class Report:
    train_size: int
    test_size: int
    model_macro_f1: float
    baseline_macro_f1: float
    details: str


def load_corpus(path: Path) -> list[Example]:
    examples = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            examples.append(Example(row["text"], row["type"], tuple(row.get("tags", ()))))
    return examples


def evaluate(examples: Sequence[Example], *, test_size: float = 0.3, seed: int = 0) -> Report:
    train, test = train_test_split(
        list(examples),
        test_size=test_size,
        random_state=seed,
        stratify=[e.type for e in examples],
    )
    truth = [e.type for e in test]
    model = TextClassifier.train(train)
    predicted = model.predict_types([e.text for e in test])
    baseline = DummyClassifier(strategy="most_frequent").fit(
        [[0]] * len(train), [e.type for e in train]
    )
    guessed = [str(label) for label in baseline.predict([[0]] * len(test))]
    return Report(
        train_size=len(train),
        test_size=len(test),
        model_macro_f1=float(f1_score(truth, predicted, average="macro")),
        baseline_macro_f1=float(f1_score(truth, guessed, average="macro", zero_division=0)),
        details=str(classification_report(truth, predicted, zero_division=0)),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="classification-report", description=__doc__)
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--test-size", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    examples = load_corpus(args.corpus)
    report = evaluate(examples, test_size=args.test_size, seed=args.seed)
    print(f"corpus: {args.corpus} ({len(examples)} documents)")
    print(f"trained on {report.train_size}, held out {report.test_size}\n")
    print(report.details)
    print(f"macro-F1 model:    {report.model_macro_f1:.3f}")
    print(f"macro-F1 baseline: {report.baseline_macro_f1:.3f} (majority class)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
