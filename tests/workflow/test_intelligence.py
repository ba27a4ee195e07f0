"""The local models themselves: classification measured on the shipped corpus, the summary,
key fields. (Suggestions as a person requests and decides them: test_suggestions.py.)"""

from __future__ import annotations

import pytest

from subgraphs.workflow.intelligence import fields, report, summary
from subgraphs.workflow.intelligence.classifier import (
    Example,
    NotEnoughExamples,
    TextClassifier,
)

CORPUS = report.load_corpus(report.DEFAULT_CORPUS)


def test_the_corpus_is_a_few_hundred_documents_of_eight_types() -> None:
    types = {e.type for e in CORPUS}
    assert len(CORPUS) >= 300 and len(types) == 8
    assert all(e.tags for e in CORPUS)


def test_classification_beats_the_majority_class_by_a_clear_margin() -> None:
    measured = report.evaluate(CORPUS, test_size=0.3, seed=0)
    assert measured.test_size == 120
    assert measured.baseline_macro_f1 < 0.1
    assert measured.model_macro_f1 >= measured.baseline_macro_f1 + 0.3
    assert measured.model_macro_f1 >= 0.8


def test_the_report_script_prints_both_scores(capsys) -> None:
    assert report.main(["--seed", "1"]) == 0
    printed = capsys.readouterr().out
    assert "macro-F1 model:" in printed and "macro-F1 baseline:" in printed


def test_a_trained_model_round_trips_and_suggests_type_tags_and_confidence() -> None:
    model = TextClassifier.from_bytes(TextClassifier.train(CORPUS[:200]).to_bytes())
    text = (
        "Purchase order PO-2027-311 to Meditech Solutions: please supply sterile surgical "
        "gloves, infusion pumps and consumables. Deliver to the central warehouse no later "
        "than 3 May 2027."
    )
    result = model.classify(text)
    assert result.type == "purchase_order"
    assert 0.3 < result.confidence <= 1.0
    assert "medical-supplies" in [t.label for t in result.tags]
    assert all(a.confidence <= result.confidence for a in result.alternatives)
    # Deterministic: the same examples train the same model.
    again = TextClassifier.train(CORPUS[:200]).classify(text)
    assert again == result


def test_too_few_labelled_documents_is_said_so() -> None:
    with pytest.raises(NotEnoughExamples, match="at least"):
        TextClassifier.train([Example("an invoice", "invoice")] * 5)


def test_key_fields_find_the_bid_deadline_amounts_and_references() -> None:
    text = (
        "Tender notice RFQ-2027-014 for road resurfacing. Bids must be submitted by "
        "15 March 2027 at 12:00. Questions until 2027-02-20. The estimated value is "
        "EUR 1.250.000,00 excluding VAT. Invoice no. INV-88812 of 03/02/2027 for "
        "$12,500.50 refers to purchase order PO-4411."
    )
    found = [(f.kind, f.value, f.subtype) for f in fields.extract(text)]
    assert found == [
        ("reference", "RFQ-2027-014", "tender"),
        ("deadline", "2027-03-15T12:00", None),
        ("deadline", "2027-02-20", None),
        ("amount", "1250000.00 EUR", "EUR"),
        ("reference", "INV-88812", "invoice"),
        ("date", "2027-02-03", None),
        ("amount", "12500.50 USD", "USD"),
        ("reference", "PO-4411", "purchase_order"),
    ]


def test_text_without_key_fields_has_none() -> None:
    assert fields.extract("Nothing to see here, only words and 42 apples.") == []


def test_a_summary_keeps_the_central_sentences_in_order() -> None:
    text = (
        "The city invites tenders for the resurfacing of the ring road. "
        "The resurfacing covers twelve kilometres of the ring road in two lots. "
        "Lunch will be served at noon. "
        "Bids for the ring road resurfacing must be submitted by 15 March 2027. "
        "Parking is available behind the town hall."
    )
    result = summary.summarize(text, max_sentences=2)
    assert len(result.sentences) == 2
    assert all("ring road" in s for s in result.sentences)
    assert result.text.startswith("The ")
    assert summary.summarize("Too short.").sentences == []
