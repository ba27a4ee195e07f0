"""Suggestions as people use them: asked for about a document (its text read from content as
the caller), computed by the job the worker runs, accepted (applied through content's API)
or rejected, and learned from. Content and identity run in process; the job runs inline
here (tests/integration/test_workflow_stack.py runs it in the real Celery worker)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import count_statements, graphql, sign_up
from content.conftest import organization_with
from sqlalchemy import select
from workflow.conftest import publish, start, unique_key

from subgraphs.workflow.intelligence import report
from subgraphs.workflow.intelligence.providers import LocalProvider
from subgraphs.workflow.models import ClassificationExample, Suggestion
from subgraphs.workflow.service import suggestions
from subgraphs.workflow.service.content import ContentAPI

TYPES = Path(__file__).parent / "corpus" / "document_types.yaml"
CORPUS = report.load_corpus(report.DEFAULT_CORPUS)
LEARNED_TYPES = ("invoice", "purchase_order", "referral_letter", "lab_report")

REQUEST = """mutation($i: RequestDocumentSuggestionsInput!) {
  requestDocumentSuggestions(input: $i) {
  __typename ... on SuggestionsRequested { suggestions { id kind status } }
  ... on WorkflowError { message code } } }"""
SUGGESTION = """query($id: ID!) { suggestion(id: $id) {
  id kind status value confidence modelVersion error decision document { id } } }"""
ACCEPT = """mutation($i: AcceptSuggestionInput!) { acceptSuggestion(input: $i) {
  __typename ... on Suggestion { id status decision }
  ... on WorkflowError { message code } } }"""
REJECT = """mutation($i: RejectSuggestionInput!) { rejectSuggestion(input: $i) {
  __typename ... on Suggestion { id status decision }
  ... on WorkflowError { message code } } }"""
LEARN = """mutation($ids: [ID!]!) { learnFromDocuments(documentIds: $ids) {
  __typename ... on ExamplesLearned { count organizationIds }
  ... on WorkflowError { message code } } }"""
ROUTING = """mutation($id: ID!) { requestTaskRouting(taskId: $id) {
  __typename ... on Suggestion { id kind status } ... on WorkflowError { message code } } }"""


@pytest.fixture
def content_api(apps, monkeypatch) -> Iterator[None]:
    """Workflow reaches the in-process content app, configured with the corpus's types."""
    monkeypatch.setattr(apps["content"].state.settings, "document_types_file", TYPES)
    state = apps["workflow"].state
    configured = state.content_api
    state.content_api = ContentAPI(
        "http://content", transport=httpx.ASGITransport(app=apps["content"])
    )
    yield
    state.content_api = configured


async def create_document(clients, account, **fields) -> dict:
    response = await clients["content"].post(
        "/api/v1/documents", json={"title": "Scanned letter", **fields}, headers=account.headers
    )
    assert response.status_code == 201, response.text
    return response.json()


async def run_jobs(apps, ids: list[str]) -> None:
    """What the worker's `workflow.compute_suggestion` does, here and now."""
    for suggestion_id in ids:
        async with apps["workflow"].state.sessions() as session:
            await suggestions.compute(session, LocalProvider(), uuid.UUID(suggestion_id))


async def suggestion(clients, account, id: str) -> dict:
    result = await graphql(clients["workflow"], SUGGESTION, {"id": id}, account.headers)
    assert "errors" not in result, result
    return result["data"]["suggestion"]


async def example_of(apps, document_id: str) -> ClassificationExample:
    async with apps["workflow"].state.sessions() as session:
        example = await session.scalar(
            select(ClassificationExample).where(
                ClassificationExample.document_id == uuid.UUID(document_id)
            )
        )
    assert example is not None
    return example


async def labelled_organization(apps, clients):
    """An organization whose clerk labelled 24 documents of four types, learned from."""
    organization, people = await organization_with(apps, clients, clerk="member", outsider="member")
    clerk = people["clerk"]
    examples = [e for kind in LEARNED_TYPES for e in [x for x in CORPUS if x.type == kind][:6]]
    ids: list[str] = []
    for example in examples:
        created = await create_document(
            clients,
            clerk,
            title=f"{example.type} {len(ids)}",
            description=example.text,
            type=example.type,
            tags=list(example.tags),
            organization_id=str(organization),
            visibility="organization",
        )
        ids.append(created["id"])
    unlabelled = await create_document(clients, clerk, organization_id=str(organization))
    learned = await graphql(
        clients["workflow"], LEARN, {"ids": [*ids, unlabelled["id"]]}, clerk.headers
    )
    assert learned["data"]["learnFromDocuments"] == {
        "__typename": "ExamplesLearned",
        "count": 24,  # the `general` one is not a label
        "organizationIds": [str(organization)],
    }
    return organization, clerk


async def test_a_classification_is_computed_accepted_applied_through_content_and_learned(
    apps, clients, content_api
) -> None:
    organization, clerk = await labelled_organization(apps, clients)
    held_out = next(e for e in CORPUS[::-1] if e.type == "invoice")
    document = await create_document(
        clients, clerk, description=held_out.text, organization_id=str(organization)
    )
    asked = await graphql(
        clients["workflow"],
        REQUEST,
        {"i": {"documentId": document["id"], "kinds": ["CLASSIFICATION", "SUMMARY", "KEY_FIELDS"]}},
        clerk.headers,
    )
    queued = asked["data"]["requestDocumentSuggestions"]["suggestions"]
    assert [(s["kind"], s["status"]) for s in queued] == [
        ("CLASSIFICATION", "QUEUED"),
        ("SUMMARY", "QUEUED"),
        ("KEY_FIELDS", "QUEUED"),
    ]
    await run_jobs(apps, [s["id"] for s in queued])
    classification, summary, key_fields = [
        await suggestion(clients, clerk, s["id"]) for s in queued
    ]
    assert classification["status"] == "READY", classification
    assert classification["value"]["type"] == "invoice"
    assert 0 < classification["confidence"] <= 1
    assert classification["modelVersion"] == "tfidf-logreg/v1"
    assert classification["document"] == {"id": document["id"]}
    assert summary["status"] == "READY" and 1 <= len(summary["value"]["sentences"]) <= 3
    assert key_fields["status"] == "READY"
    found = key_fields["value"]["fields"]
    assert found and all(f["text"] in held_out.text for f in found)
    assert "amount" in {f["kind"] for f in found}

    # The suggestion is only a suggestion: content is untouched until a person accepts.
    before = await clients["content"].get(
        f"/api/v1/documents/{document['id']}", headers=clerk.headers
    )
    assert before.json()["type"] == "general"
    accepted = await graphql(
        clients["workflow"], ACCEPT, {"i": {"id": classification["id"]}}, clerk.headers
    )
    assert accepted["data"]["acceptSuggestion"]["status"] == "ACCEPTED"
    after = (
        await clients["content"].get(f"/api/v1/documents/{document['id']}", headers=clerk.headers)
    ).json()
    assert after["type"] == "invoice"
    assert set(classification["value"]["tags"]) <= set(after["tags"])
    assert after["version"] == document["version"] + 1

    # Deciding twice is refused; the decision is the next training's example.
    again = await graphql(
        clients["workflow"], ACCEPT, {"i": {"id": classification["id"]}}, clerk.headers
    )
    assert again["data"]["acceptSuggestion"]["code"] == "CONFLICT"
    example = await example_of(apps, document["id"])
    assert (example.source, example.type) == ("accepted", "invoice")
    async with apps["workflow"].state.sessions() as session:
        model = await suggestions.current_model(session, LocalProvider(), organization)
        assert (model.version, model.example_count) == (2, 25)


async def test_a_version_another_worker_trained_meanwhile_is_used_and_nothing_expires(
    apps, clients, content_api
) -> None:
    organization, clerk = await labelled_organization(apps, clients)
    document = await create_document(
        clients, clerk, description=CORPUS[-1].text, organization_id=str(organization)
    )
    asked = await graphql(
        clients["workflow"],
        REQUEST,
        {"i": {"documentId": document["id"], "kinds": ["CLASSIFICATION"]}},
        clerk.headers,
    )
    (queued,) = asked["data"]["requestDocumentSuggestions"]["suggestions"]
    async with apps["workflow"].state.sessions() as session:
        theirs = await suggestions.train(session, LocalProvider(), organization)
    async with apps["workflow"].state.sessions() as session:
        being_computed = await session.get(Suggestion, uuid.UUID(queued["id"]))
        assert being_computed is not None
        # What a second worker does when it missed the first one's model: version 1 again.
        mine = await suggestions.train(session, LocalProvider(), organization)
        assert (mine.id, mine.version, mine.model) == (theirs.id, 1, theirs.model)
        assert CORPUS[-1].text in (being_computed.input_text or "")  # loaded still: no IO


async def test_a_rejection_with_the_right_type_is_learned_not_applied(
    apps, clients, content_api
) -> None:
    organization, clerk = await labelled_organization(apps, clients)
    text = next(e for e in CORPUS[::-1] if e.type == "lab_report").text
    document = await create_document(
        clients, clerk, description=text, organization_id=str(organization)
    )
    asked = await graphql(
        clients["workflow"],
        REQUEST,
        {"i": {"documentId": document["id"], "kinds": ["CLASSIFICATION"]}},
        clerk.headers,
    )
    (queued,) = asked["data"]["requestDocumentSuggestions"]["suggestions"]
    await run_jobs(apps, [queued["id"]])
    rejected = await graphql(
        clients["workflow"],
        REJECT,
        {"i": {"id": queued["id"], "reason": "a discharge letter", "type": "discharge_summary"}},
        clerk.headers,
    )
    decision = rejected["data"]["rejectSuggestion"]
    assert decision["status"] == "REJECTED"
    assert decision["decision"]["type"] == "discharge_summary"
    unchanged = await clients["content"].get(
        f"/api/v1/documents/{document['id']}", headers=clerk.headers
    )
    assert unchanged.json()["type"] == "general"
    example = await example_of(apps, document["id"])
    assert (example.source, example.type) == ("corrected", "discharge_summary")


async def test_refusals_are_typed_errors_and_problem_documents(apps, clients, content_api) -> None:
    organization, clerk = await labelled_organization(apps, clients)
    stranger = await sign_up(clients["identity"])
    private = await create_document(clients, clerk, description="Invoice INV-2027-001 for EUR 10")
    ask = {"documentId": private["id"], "kinds": ["SUMMARY"]}

    hidden = await graphql(clients["workflow"], REQUEST, {"i": ask}, stranger.headers)
    assert hidden["data"]["requestDocumentSuggestions"]["code"] == "NOT_FOUND"
    no_organization = await graphql(
        clients["workflow"], REQUEST, {"i": {**ask, "kinds": ["CLASSIFICATION"]}}, clerk.headers
    )
    assert no_organization["data"]["requestDocumentSuggestions"]["code"] == "BAD_USER_INPUT"
    nothing = await graphql(
        clients["workflow"], REQUEST, {"i": {**ask, "kinds": []}}, clerk.headers
    )
    assert nothing["data"]["requestDocumentSuggestions"]["code"] == "BAD_USER_INPUT"
    anonymous = await graphql(clients["workflow"], REQUEST, {"i": ask})
    assert anonymous["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
    bad_id = await graphql(clients["workflow"], SUGGESTION, {"id": "nope"}, clerk.headers)
    assert bad_id["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"

    # A type content does not know: content refuses, the suggestion stays to be decided.
    document = await create_document(
        clients, clerk, description=CORPUS[0].text, organization_id=str(organization)
    )
    asked = await graphql(
        clients["workflow"],
        REQUEST,
        {"i": {"documentId": document["id"], "kinds": ["CLASSIFICATION"]}},
        clerk.headers,
    )
    (queued,) = asked["data"]["requestDocumentSuggestions"]["suggestions"]
    pending = await graphql(clients["workflow"], ACCEPT, {"i": {"id": queued["id"]}}, clerk.headers)
    assert pending["data"]["acceptSuggestion"]["code"] == "CONFLICT"  # not computed yet
    await run_jobs(apps, [queued["id"]])
    unknown = await graphql(
        clients["workflow"], ACCEPT, {"i": {"id": queued["id"], "type": "memo"}}, clerk.headers
    )
    assert unknown["data"]["acceptSuggestion"]["code"] == "BAD_USER_INPUT"
    assert (await suggestion(clients, clerk, queued["id"]))["status"] == "READY"
    # Someone outside the organization does not see it.
    outsider = await graphql(
        clients["workflow"], SUGGESTION, {"id": queued["id"]}, stranger.headers
    )
    assert outsider["data"]["suggestion"] is None

    rest = clients["workflow"]
    bad = await rest.post(
        "/api/v1/workflows/suggestions",
        json={"document_id": private["id"], "kinds": ["horoscope"]},
        headers=clerk.headers,
    )
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    missing = await rest.get(f"/api/v1/workflows/suggestions/{uuid.uuid4()}", headers=clerk.headers)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    unauthenticated = await rest.post(
        "/api/v1/workflows/suggestions", json={"document_id": private["id"], "kinds": ["summary"]}
    )
    assert unauthenticated.status_code == 401
    made = await rest.post(
        "/api/v1/workflows/suggestions",
        json={"document_id": private["id"], "kinds": ["summary", "key_fields"]},
        headers=clerk.headers,
    )
    assert made.status_code == 202, made.text
    await run_jobs(apps, [s["id"] for s in made.json()])
    listed = await rest.get(
        "/api/v1/workflows/suggestions",
        params={"subject_id": private["id"]},
        headers=clerk.headers,
    )
    assert sorted((s["kind"], s["status"]) for s in listed.json()) == [
        ("key_fields", "ready"),
        ("summary", "ready"),
    ]
    fields = next(s for s in listed.json() if s["kind"] == "key_fields")["value"]["fields"]
    assert ("reference", "INV-2027-001") in [(f["kind"], f["value"]) for f in fields]


ROUTED = """
key: {key}
name: Routed review
initial: review
states:
  review:
    tasks:
      - {{name: check, title: Check it, assignee: {{role: reviewer}}, outcomes: [done]}}
  finished: {{final: true}}
transitions:
  - {{name: done, from: review, to: finished, action: true}}
"""


async def test_routing_suggests_who_usually_completes_the_task(apps, clients, admin) -> None:
    identity = clients["identity"]
    often = await sign_up(identity, roles=("reviewer",), apps=apps)
    seldom = await sign_up(identity, roles=("reviewer",), apps=apps)
    key = unique_key("routed")
    assert (await publish(clients, admin, ROUTED.format(key=key)))["version"] == 1

    async def open_task() -> str:
        instance = await start(clients, admin, key)
        tasks = await clients["workflow"].get("/api/v1/tasks", headers=often.headers)
        return next(t["id"] for t in tasks.json()["items"] if t["instance_id"] == instance["id"])

    for person in (often, often, seldom):
        task = await open_task()
        done = await clients["workflow"].post(
            f"/api/v1/tasks/{task}/complete", json={"outcome": "done"}, headers=person.headers
        )
        assert done.status_code == 200, done.text

    task = await open_task()
    asked = await graphql(clients["workflow"], ROUTING, {"id": task}, seldom.headers)
    routing = asked["data"]["requestTaskRouting"]
    assert (routing["kind"], routing["status"]) == ("ROUTING", "QUEUED")
    await run_jobs(apps, [routing["id"]])
    ready = await suggestion(clients, seldom, routing["id"])
    assert ready["value"]["userId"] == often.id
    assert ready["confidence"] == pytest.approx(2 / 3, abs=1e-3)
    assert [c["completed"] for c in ready["value"]["candidates"]] == [2, 1]

    accepted = await graphql(
        clients["workflow"], ACCEPT, {"i": {"id": routing["id"]}}, seldom.headers
    )
    assert accepted["data"]["acceptSuggestion"]["status"] == "ACCEPTED"
    inbox = await clients["workflow"].get("/api/v1/tasks", headers=often.headers)
    mine = next(t for t in inbox.json()["items"] if t["id"] == task)
    assert mine["assignee_id"] == often.id

    nobody = await graphql(clients["workflow"], ROUTING, {"id": str(uuid.uuid4())}, seldom.headers)
    assert nobody["data"]["requestTaskRouting"]["code"] == "NOT_FOUND"


ENTITIES = """query($r: [_Any!]!) { _entities(representations: $r) {
  ... on Document { id suggestions { id kind status } } } }"""


async def test_document_suggestions_of_many_documents_cost_one_statement(
    apps, clients, content_api
) -> None:
    _, clerk = await labelled_organization(apps, clients)
    documents = [
        await create_document(clients, clerk, description=CORPUS[i].text) for i in range(3)
    ]
    for document in documents:
        made = await clients["workflow"].post(
            "/api/v1/workflows/suggestions",
            json={"document_id": document["id"], "kinds": ["summary"]},
            headers=clerk.headers,
        )
        assert made.status_code == 202
    representations = [{"__typename": "Document", "id": d["id"]} for d in documents]
    with count_statements(apps["workflow"].state.engine) as sql:
        result = await graphql(clients["workflow"], ENTITIES, {"r": representations}, clerk.headers)
    assert [len(e["suggestions"]) for e in result["data"]["_entities"]] == [1, 1, 1]
    assert sql.count == 1
