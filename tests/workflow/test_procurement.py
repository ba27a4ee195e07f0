"""The built-in procurement template, from publication to award, with its notifications."""

from __future__ import annotations

import uuid
from datetime import timedelta

from conftest import sign_up
from sqlalchemy import select
from workflow.conftest import act, fire_timers_until, instance_of, start

from subgraphs.common.database import utcnow
from subgraphs.workflow.models import OutboxEvent

KEY = "procurement.consultation"


async def fire_until(apps, clients, admin, instance: str, state: str) -> dict:
    async def in_state() -> dict | None:
        current = await instance_of(clients, admin, instance)
        return current if current["state"] == state else None

    return await fire_timers_until(apps, in_state)


async def test_a_consultation_runs_from_publication_to_award(apps, clients, admin) -> None:
    identity = clients["identity"]
    buyer = await sign_up(identity, roles=("buyer",), apps=apps)
    suppliers = [await sign_up(identity, roles=("supplier",), apps=apps) for _ in range(2)]
    evaluator = await sign_up(identity, roles=("evaluator",), apps=apps)
    instance = (await start(clients, buyer, KEY, document=str(uuid.uuid4())))["id"]
    assert (await instance_of(clients, buyer, instance))["state"] == "draft"

    incomplete = await act(clients, buyer, instance, "publish", data={"title": "Roads"})
    assert incomplete["code"] == "BAD_USER_INPUT"
    now = utcnow()
    published = await act(
        clients,
        buyer,
        instance,
        "publish",
        data={
            "title": "Roads 2027",
            "questions_deadline": (now + timedelta(seconds=1)).isoformat(),
            "bids_deadline": (now + timedelta(seconds=2)).isoformat(),
            "supplier_ids": [s.id for s in suppliers],
        },
    )
    assert published["state"] == "published"

    await fire_until(apps, clients, admin, instance, "questions")
    answered = await act(clients, buyer, instance, "answer", data={"answers": ["Yes"]})
    assert answered["state"] == "questions"
    await fire_until(apps, clients, admin, instance, "bids_open")
    bid = await act(clients, suppliers[0], instance, "submit_bid")
    assert bid["state"] == "bids_open"
    refused = await act(clients, evaluator, instance, "submit_bid")
    assert refused["code"] == "FORBIDDEN"
    closed = await fire_until(apps, clients, admin, instance, "bids_closed")
    assert [t["trigger"] for t in closed["transitions"]][-1] == "timer"

    evaluating = await act(clients, buyer, instance, "evaluate")
    assert evaluating["state"] == "evaluation"
    task = (await instance_of(clients, buyer, instance))["tasks"][-1]
    assert (task["name"], task["role"]) == ("evaluate", "evaluator")
    done = await clients["workflow"].post(
        f"/api/v1/tasks/{task['id']}/complete",
        json={"outcome": "award", "data": {"awardee_id": suppliers[0].id, "award_reason": "Best"}},
        headers=evaluator.headers,
    )
    assert done.status_code == 200, done.text
    final = await instance_of(clients, buyer, instance)
    assert (final["state"], final["status"]) == ("awarded", "completed")
    assert [t["name"] for t in final["transitions"]] == [
        "start",
        "publish",
        "open_questions",
        "answer",
        "close_questions",
        "submit_bid",
        "close_bids",
        "evaluate",
        "award",
    ]

    async with apps["workflow"].state.sessions() as session:
        events = (await session.scalars(select(OutboxEvent).order_by(OutboxEvent.created_at))).all()
    mine = [e.payload for e in events if e.payload.get("instance_id") == instance]
    titles = [(p["title"], sorted(p["recipient_ids"])) for p in mine if "title" in p]
    supplier_ids = sorted(s.id for s in suppliers)
    assert titles == [
        ("New consultation: Roads 2027", supplier_ids),
        ("Bids are open: Roads 2027", supplier_ids),
        ("Bid received: Roads 2027", [suppliers[0].id]),
        ("Bids closed: Roads 2027", [buyer.id]),
        ("Consultation awarded: Roads 2027", sorted([*supplier_ids, buyer.id])),
    ]
    assert any(e.type == "workflow.consultation_awarded" for e in events)
