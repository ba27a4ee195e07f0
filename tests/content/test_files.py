"""File versions: streamed uploads (REST multipart and GraphQL multipart), immutable versions
with hash, size and media type, downloads of any version, limits that leave nothing behind."""

from __future__ import annotations

import hashlib
import json
import uuid

import pytest
from content.conftest import create_document, gql, upload
from content.pdf import pdf_with_text
from sqlalchemy import func, select

from subgraphs.content.models import DocumentVersion


def stored_files(apps, document_id: str) -> list[str]:
    folder = apps["content"].state.settings.storage_path / "documents" / document_id
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


async def version_rows(apps, document_id: str) -> int:
    async with apps["content"].state.sessions() as session:
        return await session.scalar(
            select(func.count()).where(DocumentVersion.document_id == uuid.UUID(document_id))
        )


async def test_each_upload_is_a_new_version_and_any_can_be_downloaded(clients, alice) -> None:
    content = clients["content"]
    document = await create_document(content, alice, "Specification")
    id = document["id"]
    first, second = b"first draft\n", b"second draft, longer\n" * 1000

    one = await upload(content, alice, id, first, "spec.txt", "text/plain")
    assert one.status_code == 201, one.text
    assert one.json() | {"id": None, "created_at": None} == {
        "id": None,
        "number": 1,
        "filename": "spec.txt",
        "media_type": "text/plain",
        "size": len(first),
        "sha256": hashlib.sha256(first).hexdigest(),
        "created_by": alice.id,
        "created_at": None,
    }
    two = await upload(content, alice, id, second, "C:\\docs\\spec v2.md", "text/markdown")
    assert two.json()["number"] == 2 and two.json()["filename"] == "spec v2.md"

    latest = await content.get(f"/api/v1/documents/{id}/content", headers=alice.headers)
    assert latest.status_code == 200 and latest.content == second
    assert latest.headers["content-type"].startswith("text/markdown")
    assert latest.headers["etag"] == f'"{hashlib.sha256(second).hexdigest()}"'
    assert latest.headers["content-length"] == str(len(second))
    assert "spec%20v2.md" in latest.headers["content-disposition"]
    older = await content.get(f"/api/v1/documents/{id}/content?version=1", headers=alice.headers)
    assert older.content == first and older.headers["x-document-version"] == "1"
    absent = await content.get(f"/api/v1/documents/{id}/content?version=3", headers=alice.headers)
    assert absent.status_code == 404

    versions = await content.get(f"/api/v1/documents/{id}/versions", headers=alice.headers)
    assert [v["number"] for v in versions.json()] == [2, 1]
    got = await content.get(f"/api/v1/documents/{id}", headers=alice.headers)
    assert got.json()["latest_version"]["number"] == 2 and got.json()["version"] == 3


async def test_graphql_multipart_upload(clients, alice) -> None:
    content = clients["content"]
    document = await create_document(content, alice, "Via GraphQL")
    operations = {
        "query": """mutation($id: ID!, $file: Upload!) { uploadDocumentVersion(
            documentId: $id, file: $file) { __typename
            ... on DocumentVersion { number size sha256 mediaType filename downloadPath }
            ... on MutationError { code message } } }""",
        "variables": {"id": document["id"], "file": None},
    }
    body = b"%s" % pdf_with_text("quarterly tender")
    response = await content.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.file"]})},
        files={"0": ("report.pdf", body, "application/pdf")},
        headers=alice.headers,
    )
    assert response.status_code == 200, response.text
    version = response.json()["data"]["uploadDocumentVersion"]
    assert version == {
        "__typename": "DocumentVersion",
        "number": 1,
        "size": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "mediaType": "application/pdf",
        "filename": "report.pdf",
        "downloadPath": f"/api/v1/documents/{document['id']}/content?version=1",
    }
    result = await gql(
        content,
        "query($id: ID!) { document(id: $id) { versions { number } latestVersion { filename } } }",
        {"id": document["id"]},
        alice,
    )
    assert result["data"]["document"] == {
        "versions": [{"number": 1}],
        "latestVersion": {"filename": "report.pdf"},
    }


async def test_an_upload_over_the_limit_leaves_no_file_and_no_row(
    clients, apps, alice, monkeypatch
) -> None:
    content = clients["content"]
    monkeypatch.setattr(apps["content"].state.settings, "max_upload_bytes", 1000)
    document = await create_document(content, alice, "Too big")
    id = document["id"]

    async def chunked():  # no Content-Length: only counting the bytes can stop it
        boundary = "b0undary"
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="big.txt"\r\nContent-Type: text/plain\r\n\r\n'
        ).encode()
        for _ in range(50):
            yield b"x" * 100
        yield f"\r\n--{boundary}--\r\n".encode()

    streamed = await content.post(
        f"/api/v1/documents/{id}/versions",
        content=chunked(),
        headers={**alice.headers, "content-type": "multipart/form-data; boundary=b0undary"},
    )
    assert streamed.status_code == 413, streamed.text
    assert streamed.json()["code"] == "PAYLOAD_TOO_LARGE" and streamed.json()["limit"] == 1000
    declared = await upload(content, alice, id, b"y" * 5000)  # refused on Content-Length
    assert declared.status_code == 413

    operations = {
        "query": "mutation($id: ID!, $f: Upload!) { uploadDocumentVersion(documentId: $id,"
        " file: $f) { __typename ... on UploadRejected { code limit } } }",
        "variables": {"id": id, "f": None},
    }
    response = await content.post(
        "/graphql",
        data={"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.f"]})},
        files={"0": ("big.txt", b"z" * 5000, "text/plain")},
        headers=alice.headers,
    )
    assert response.json()["data"]["uploadDocumentVersion"] == {
        "__typename": "UploadRejected",
        "code": "PAYLOAD_TOO_LARGE",
        "limit": 1000,
    }
    assert stored_files(apps, id) == [] and await version_rows(apps, id) == 0
    fits = await upload(content, alice, id, b"w" * 1000)
    assert fits.status_code == 201 and len(stored_files(apps, id)) == 1


@pytest.mark.parametrize(
    ("filename", "media_type"),
    [("tool.exe", "application/x-msdownload"), ("archive.zip", "application/octet-stream")],
)
async def test_a_media_type_off_the_allow_list_is_refused(
    clients, apps, alice, filename, media_type
) -> None:
    content = clients["content"]
    document = await create_document(content, alice, "Typed")
    refused = await upload(content, alice, document["id"], b"MZ...", filename, media_type)
    assert refused.status_code == 415 and refused.json()["code"] == "UNSUPPORTED_MEDIA_TYPE"
    assert stored_files(apps, document["id"]) == []
    assert await version_rows(apps, document["id"]) == 0


async def test_an_empty_file_or_a_form_without_file_is_refused(clients, apps, alice) -> None:
    content = clients["content"]
    document = await create_document(content, alice, "Empty")
    empty = await upload(content, alice, document["id"], b"")
    assert empty.status_code == 422
    no_file = await content.post(
        f"/api/v1/documents/{document['id']}/versions",
        files={"other": ("a.txt", b"abc", "text/plain")},
        headers=alice.headers,
    )
    assert no_file.status_code == 422 and no_file.json()["field"] == "file"
    not_a_form = await content.post(
        f"/api/v1/documents/{document['id']}/versions", json={}, headers=alice.headers
    )
    assert not_a_form.status_code == 422
    assert stored_files(apps, document["id"]) == []


async def test_text_is_extracted_for_search_from_each_format(clients, alice) -> None:
    content = clients["content"]
    word = f"quokka{uuid.uuid4().hex[:6]}"
    samples = {
        "plain.txt": ("text/plain", f"plain {word}text and {word}".encode()),
        "notes.md": ("text/markdown", f"# Heading\n\n**{word}md** in [a link](http://x)".encode()),
        "page.html": (
            "text/html",
            f"<html><script>{word}hidden</script><p>{word}html &amp; more</p></html>".encode(),
        ),
        "scan.pdf": ("application/pdf", pdf_with_text(f"{word}pdf inside")),
    }
    ids = {}
    for filename, (media_type, body) in samples.items():
        document = await create_document(content, alice, filename)
        response = await upload(content, alice, document["id"], body, filename, media_type)
        assert response.status_code == 201, response.text
        ids[filename] = document["id"]

    async def found(term: str) -> list[str]:
        response = await content.get(
            "/api/v1/documents/search", params={"q": term}, headers=alice.headers
        )
        return [hit["document"]["title"] for hit in response.json()["items"]]

    assert await found(f"{word}md") == ["notes.md"]
    assert await found(f"{word}html") == ["page.html"]
    assert await found(f"{word}pdf") == ["scan.pdf"]
    assert await found(f"{word}text") == ["plain.txt"]
    assert await found(f"{word}hidden") == []  # script content is not text
