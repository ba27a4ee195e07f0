"""Writes documents.jsonl: the labelled sample corpus classification is measured on.

    .venv/bin/python tests/workflow/corpus/generate.py

Short documents of eight types from a procurement office and a clinic, varied from
templates with a fixed seed (the file is committed; rerunning rewrites it identically).
The types share their vocabulary on purpose — invoices, purchase orders, bids and contracts
all carry amounts, references and suppliers; referral letters, discharge summaries and
lab reports all speak of patients, findings and follow-up — and every document borrows
sentences typical of a neighbouring type, so no single keyword gives the answer away.
Tags follow the subject (cardiology, roadworks, ...), which cuts across the types.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SEED = 2027
PER_TYPE = 50
HERE = Path(__file__).resolve().parent

SUPPLIERS = [
    "Nordbau GmbH",
    "Atlantic Office Supplies",
    "Meditech Solutions",
    "Ville Propre SARL",
    "Greenfield Logistics",
    "Helios IT Services",
    "Rivera Construction",
    "CleanWave Ltd",
    "BlueLine Medical",
    "Quantum Networks",
    "Stonebridge Civil Works",
    "Alpine Catering",
]
BUYERS = [
    "the City of Lyon",
    "Northshire County Council",
    "the Regional Health Authority",
    "Saint-Martin University Hospital",
    "the Ministry of Transport",
    "Westbrook School District",
]
PROCUREMENT_TOPICS = {
    "roadworks": [
        "resurfacing of the ring road",
        "repair of bridge expansion joints",
        "road marking and signage",
        "pothole repairs on municipal roads",
    ],
    "it": [
        "replacement of 400 laptops",
        "a hosted document management system",
        "network switches and cabling",
        "a three-year software maintenance service",
    ],
    "medical-supplies": [
        "sterile surgical gloves",
        "infusion pumps and consumables",
        "patient monitors for intensive care",
        "disposable syringes",
    ],
    "cleaning": [
        "daily cleaning of administrative buildings",
        "window cleaning twice a year",
        "disinfection of hospital wards",
        "waste collection and sorting",
    ],
    "catering": [
        "school meals for twelve schools",
        "staff canteen services",
        "patient meals with dietary options",
    ],
}
CLINIC_TOPICS = {
    "cardiology": [
        "chest pain on exertion",
        "atrial fibrillation",
        "heart failure with reduced ejection fraction",
        "hypertension poorly controlled on two agents",
    ],
    "oncology": [
        "a suspicious breast lump",
        "follow-up after colon cancer resection",
        "persistent lymphadenopathy",
        "an abnormal mammogram",
    ],
    "pediatrics": [
        "recurrent ear infections",
        "failure to thrive",
        "asthma exacerbations",
        "a persistent fever in a four-year-old",
    ],
    "diabetes": [
        "type 2 diabetes with rising HbA1c",
        "diabetic foot ulcer",
        "new-onset type 1 diabetes",
        "hypoglycaemic episodes",
    ],
    "orthopedics": [
        "a displaced wrist fracture",
        "knee pain after a sports injury",
        "hip osteoarthritis",
        "chronic lower back pain",
    ],
}
FIRST = ["Anna", "Marc", "Sofia", "James", "Leila", "Tomás", "Hannah", "Yusuf", "Claire", "Noah"]
LAST = ["Martin", "Okafor", "Dubois", "Schmidt", "Rossi", "Nguyen", "Kowalski", "Haddad"]
MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]


def pick(r: random.Random, items: list[str]) -> str:
    return r.choice(items)


def date(r: random.Random) -> str:
    day, month, year = r.randint(1, 28), r.randint(1, 12), r.choice([2026, 2027])
    style = r.randint(0, 2)
    if style == 0:
        return f"{day} {MONTHS[month - 1]} {year}"
    if style == 1:
        return f"{year}-{month:02d}-{day:02d}"
    return f"{day:02d}/{month:02d}/{year}"


def money(r: random.Random) -> str:
    value = r.choice([r.randint(200, 9_999), r.randint(10_000, 2_000_000)])
    cents = r.choice(["", ".00", f".{r.randint(10, 99)}"])
    return r.choice(
        [
            f"EUR {value:,}{cents}",
            f"€{value:,}{cents}",
            f"{value:,}{cents} EUR",
            f"USD {value:,}{cents}",
            f"£{value:,}{cents}",
        ]
    )


def ref(r: random.Random, prefix: str) -> str:
    return f"{prefix}-{r.choice([2026, 2027])}-{r.randint(1, 999):03d}"


def person(r: random.Random) -> str:
    return f"{pick(r, FIRST)} {pick(r, LAST)}"


# --- each type: sentences typical of it; a document takes several, plus borrowed ones ----


def tender_notice(r, topic, subject):
    return [
        f"{pick(r, BUYERS).capitalize()} invites tenders for {subject}.",
        f"Reference {ref(r, 'TND')}; the procedure is {pick(r, ['open', 'restricted'])}.",
        f"Bids must be submitted by {date(r)} at 12:00 through the procurement portal.",
        f"Questions may be sent until {date(r)}; answers are published to all candidates.",
        f"The contract has {r.randint(1, 5)} lots and lasts {r.randint(12, 48)} months.",
        "Candidates must provide proof of insurance and of their financial standing.",
        f"The estimated value of the contract is {money(r)} excluding VAT.",
        "Award criteria: price 40 percent, technical merit 60 percent.",
        "The tender documents can be downloaded free of charge.",
    ]


def bid(r, topic, subject):
    supplier = pick(r, SUPPLIERS)
    return [
        f"{supplier} is pleased to submit its offer for {subject}.",
        f"This bid answers consultation {ref(r, 'TND')} published by {pick(r, BUYERS)}.",
        f"Our total price is {money(r)} excluding VAT, valid for 120 days.",
        "We enclose our technical proposal, references from similar projects and our CVs.",
        f"We can start work within {r.randint(2, 8)} weeks of the award.",
        "Our team has delivered comparable services to public buyers for ten years.",
        "We confirm that we accept the administrative clauses without reservation.",
        f"Please direct any clarification request to {person(r)}, bid manager.",
    ]


def contract(r, topic, subject):
    return [
        f"This agreement is made between {pick(r, BUYERS)} and {pick(r, SUPPLIERS)}.",
        f"The supplier shall deliver {subject} as described in the technical specification.",
        f"The contract price is {money(r)}, payable within 30 days of a valid invoice.",
        f"The agreement takes effect on {date(r)} for a term of {r.randint(1, 4)} years.",
        "Either party may terminate with three months written notice.",
        "Penalties of 0.5 percent per day of delay apply, capped at 10 percent.",
        "The supplier shall maintain professional liability insurance throughout.",
        "This contract is governed by the law of the buyer's jurisdiction.",
        f"Signed for the buyer by {person(r)} and for the supplier by {person(r)}.",
    ]


def invoice(r, topic, subject):
    return [
        f"Invoice {ref(r, 'INV')} issued by {pick(r, SUPPLIERS)}.",
        f"For {subject}, delivered as ordered under purchase order {ref(r, 'PO')}.",
        f"Amount due: {money(r)} including VAT.",
        f"Payment is due by {date(r)} by bank transfer to the account below.",
        "Late payment incurs interest at the statutory rate plus a fixed recovery fee.",
        f"Invoice date {date(r)}; customer number {r.randint(10000, 99999)}.",
        "Please quote the invoice number on your remittance.",
        "VAT is charged at the standard rate of 20 percent.",
    ]


def purchase_order(r, topic, subject):
    return [
        f"Purchase order {ref(r, 'PO')} from {pick(r, BUYERS)} to {pick(r, SUPPLIERS)}.",
        f"Please supply {subject} at the prices agreed in the framework agreement.",
        f"Order total: {money(r)}; the budget line is {r.randint(6000, 6999)}.",
        f"Deliver to the central warehouse no later than {date(r)}.",
        "Each delivery note must state the order number and the item codes.",
        f"Ordered by {person(r)}, approved by the head of purchasing.",
        "Invoices that do not reference this order will be returned unpaid.",
        f"Quantity: {r.randint(2, 500)} units, unit price as per the catalogue.",
    ]


def referral_letter(r, topic, subject):
    return [
        f"Dear Dr {pick(r, LAST)}, I would be grateful if you could see {person(r)}.",
        f"The patient presents with {subject} over the last {r.randint(2, 12)} weeks.",
        "Current medication is listed below; there are no known drug allergies.",
        f"I am referring them for specialist assessment in {topic}.",
        "Recent blood tests are enclosed for your information.",
        "I would appreciate an appointment within the next two weeks if possible.",
        f"Thank you for seeing this patient. Yours sincerely, Dr {pick(r, LAST)}, GP.",
        "The patient is aware of the referral and agrees to it.",
    ]


def discharge_summary(r, topic, subject):
    return [
        f"{person(r)} was admitted on {date(r)} with {subject}.",
        f"Discharged on {date(r)} after a stay of {r.randint(1, 14)} days.",
        "During the admission the patient was treated and observed on the ward.",
        "Medication on discharge has been reconciled and explained to the patient.",
        f"Follow-up in the {topic} outpatient clinic in {r.randint(2, 8)} weeks.",
        "The general practitioner is asked to review the blood pressure and renal function.",
        "The patient was mobile and independent at the time of discharge.",
        "Diagnosis on discharge and procedures performed are listed above.",
    ]


def lab_report(r, topic, subject):
    value = round(r.uniform(1, 15), 1)
    return [
        f"Specimen received on {date(r)}, requested by Dr {pick(r, LAST)}.",
        f"Clinical details: {subject}.",
        f"Haemoglobin {r.randint(95, 165)} g/L (reference 120-160).",
        f"HbA1c {value} percent; creatinine {r.randint(50, 140)} µmol/L.",
        f"C-reactive protein {r.randint(1, 120)} mg/L, flagged as {pick(r, ['high', 'normal'])}.",
        "Results were validated by the biologist on duty.",
        "Sample quality adequate; no haemolysis observed.",
        "Please interpret these results in the clinical context.",
    ]


TYPES = {
    "tender_notice": (tender_notice, PROCUREMENT_TOPICS, ["bid", "contract"]),
    "bid": (bid, PROCUREMENT_TOPICS, ["tender_notice", "contract"]),
    "contract": (contract, PROCUREMENT_TOPICS, ["invoice", "bid"]),
    "invoice": (invoice, PROCUREMENT_TOPICS, ["purchase_order", "contract"]),
    "purchase_order": (purchase_order, PROCUREMENT_TOPICS, ["invoice", "contract"]),
    "referral_letter": (referral_letter, CLINIC_TOPICS, ["discharge_summary", "lab_report"]),
    "discharge_summary": (discharge_summary, CLINIC_TOPICS, ["referral_letter", "lab_report"]),
    "lab_report": (lab_report, CLINIC_TOPICS, ["discharge_summary", "referral_letter"]),
}
SHARED = [
    "This document is confidential and intended for the named recipient only.",
    "Please keep a copy for your records.",
    "For any question, contact the office during working hours.",
    "Attachments: see the list at the end of this document.",
]


def document(r: random.Random, kind: str) -> dict[str, object]:
    make, topics, neighbours = TYPES[kind]
    topic = r.choice(sorted(topics))
    subject = r.choice(topics[topic])
    own = make(r, topic, subject)
    sentences = r.sample(own, r.randint(2, 4))
    # Borrow one to three sentences from neighbouring types: their vocabulary leaks in.
    for _ in range(r.randint(1, 3)):
        neighbour = TYPES[r.choice(neighbours)][0]
        sentences.insert(r.randint(1, len(sentences)), r.choice(neighbour(r, topic, subject)))
    if r.random() < 0.5:
        sentences.append(r.choice(SHARED))
    tags = [topic]
    if r.random() < 0.25:
        tags.append("urgent")
        sentences.insert(0, r.choice(["URGENT.", "Priority: high.", "Please treat as urgent."]))
    return {"type": kind, "tags": tags, "text": " ".join(sentences)}


def main() -> None:
    r = random.Random(SEED)
    documents = [document(r, kind) for kind in TYPES for _ in range(PER_TYPE)]
    r.shuffle(documents)
    with (HERE / "documents.jsonl").open("w") as out:
        for number, doc in enumerate(documents, 1):
            out.write(json.dumps({"id": number, **doc}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
