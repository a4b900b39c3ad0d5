"""The Knowledge page through the real views: upload, list, view, delete; refusals; other people."""

from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from knowledge.models import Chunk, Document
from tests.conftest import PASSWORD
from tests.knowledge import helpers

pytestmark = pytest.mark.django_db


@pytest.fixture
def alice_client(client, alice):
    assert client.login(username="alice", password=PASSWORD)
    return client


def upload(client, name: str, data: bytes, title: str = "", follow: bool = True):
    file = SimpleUploadedFile(name, data, content_type="application/octet-stream")
    return client.post(reverse("knowledge:index"), {"file": file, "title": title}, follow=follow)


def listed_titles(response) -> list[str]:
    html = response.content.decode()
    table = html[html.index('data-testid="knowledge-list"') :]
    return re.findall(r'<a href="/knowledge/[0-9a-f-]+/">([^<]+)</a>', table)


def test_the_page_needs_a_login(client):
    response = client.get("/knowledge/")
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_the_top_bar_links_to_the_knowledge_page(alice_client):
    html = alice_client.get("/").content.decode()
    assert 'href="/knowledge/"' in html


def test_an_empty_page_offers_the_upload_form(alice_client):
    response = alice_client.get("/knowledge/")
    html = response.content.decode()
    assert response.status_code == 200
    assert 'enctype="multipart/form-data"' in html
    assert "csrfmiddlewaretoken" in html
    for testid in ("knowledge-upload", "knowledge-file", "knowledge-list"):
        assert f'data-testid="{testid}"' in html
    assert "No documents yet." in html


def test_uploading_text_markdown_and_pdf_lists_them_with_size_and_passages(alice_client, alice):
    response = upload(alice_client, "Bicycle maintenance.txt", helpers.BICYCLE.encode())
    assert response.redirect_chain == [(reverse("knowledge:index"), 302)]
    assert "Added “Bicycle maintenance”: 2 passages." in response.content.decode()
    upload(alice_client, "bread.md", helpers.SOURDOUGH.encode(), title="Sourdough, my way")
    pdf = helpers.make_pdf(helpers.LISBON_PDF_LINES)
    response = upload(alice_client, "Lisbon.pdf", pdf)

    assert sorted(listed_titles(response)) == ["Bicycle maintenance", "Lisbon", "Sourdough, my way"]
    docs = {d.title: d for d in Document.objects.filter(user=alice)}
    assert docs["Bicycle maintenance"].media_type == "text/plain"
    assert docs["Sourdough, my way"].media_type == "text/markdown"
    assert docs["Sourdough, my way"].filename == "bread.md"
    assert docs["Lisbon"].media_type == "application/pdf"
    assert docs["Lisbon"].size == len(pdf)
    row = re.search(f'data-document-id="{docs["Lisbon"].id}">(.*?)</tr>', response.content.decode(), re.S)
    assert row is not None
    cells = re.findall(r"<td>(.*?)</td>", row.group(1), re.S)
    assert cells[1:4] == ["Lisbon.pdf", f"{len(pdf)}\xa0bytes", "1"]
    assert 'data-testid="knowledge-delete"' in row.group(1)


def test_a_document_page_shows_its_passages_with_anchors(alice_client, alice):
    upload(alice_client, "Bicycle maintenance.txt", helpers.BICYCLE.encode())
    doc = Document.objects.get(user=alice)
    response = alice_client.get(f"/knowledge/{doc.id}/")
    html = response.content.decode()
    assert response.status_code == 200
    chunks = list(doc.chunks.all())
    assert len(chunks) == 2
    for chunk in chunks:
        assert f'id="chunk-{chunk.id}"' in html
    assert "barrel adjuster" in html and "toed in" in html
    assert html.index(f'id="chunk-{chunks[0].id}"') < html.index(f'id="chunk-{chunks[1].id}"')


def test_the_pdfs_text_is_what_gets_stored(alice_client, alice):
    upload(alice_client, "Lisbon.pdf", helpers.make_pdf(helpers.LISBON_PDF_LINES))
    (text,) = Chunk.objects.filter(user=alice).values_list("text", flat=True)
    assert "ride tram 28 through Alfama" in text
    assert "Pena Palace opens at 9:30" in text


def test_deleting_asks_first_then_removes_the_document_and_its_passages(alice_client, alice):
    upload(alice_client, "Invoices.txt", helpers.INVOICES.encode())
    doc = Document.objects.get(user=alice)
    confirm = alice_client.get(f"/knowledge/{doc.id}/delete/")
    assert confirm.status_code == 200
    assert "Delete “Invoices”?" in confirm.content.decode()
    assert Document.objects.filter(id=doc.id).exists()  # asking deletes nothing

    response = alice_client.post(f"/knowledge/{doc.id}/delete/", follow=True)
    assert response.redirect_chain == [(reverse("knowledge:index"), 302)]
    assert "Deleted “Invoices”." in response.content.decode()
    assert not Document.objects.filter(id=doc.id).exists()
    assert not Chunk.objects.filter(user=alice).exists()
    assert alice_client.get(f"/knowledge/{doc.id}/").status_code == 404


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("report.docx", b"PK\x03\x04 word", "“report.docx” is not a file Chimera can read"),
        ("notes", b"plain words", "“notes” is not a file Chimera can read"),
        ("empty.txt", b"", "“empty.txt” is empty."),
        ("blank.md", b" \n\t\n ", "“blank.md” has no text in it."),
        ("latin1.txt", "café crème".encode("latin-1"), "“latin1.txt” is not UTF-8 text"),
        ("binary.txt", b"ELF\x00\x01\x02 header", "“binary.txt” contains NUL bytes"),
        ("fake.pdf", b"just some text, not a PDF", "“fake.pdf” is not a PDF file"),
        ("broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\n garbage", "“broken.pdf” could not be read"),
        ("scan.pdf", helpers.make_pdf([]), "“scan.pdf” has no text that can be extracted"),
    ],
)
def test_bad_uploads_are_refused_with_a_message(alice_client, alice, name, data, message):
    response = upload(alice_client, name, data, follow=False)
    assert response.status_code == 400
    html = response.content.decode()
    assert 'data-testid="knowledge-error"' in html
    assert message in html.replace("&quot;", '"')
    assert not Document.objects.filter(user=alice).exists()
    assert not Chunk.objects.filter(user=alice).exists()


def test_a_file_over_the_size_limit_is_refused(alice_client, alice, settings):
    settings.CHIMERA_KNOWLEDGE_MAX_UPLOAD_BYTES = 1000
    response = upload(alice_client, "long.txt", b"word " * 300, follow=False)
    assert response.status_code == 400
    assert (
        "“long.txt” is 1.5\xa0KB; the largest file you can add is 1000\xa0bytes." in response.content.decode()
    )
    assert not Document.objects.exists()


def test_a_file_larger_than_the_request_body_limit_but_within_the_upload_limit_is_added(
    alice_client, settings
):
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE < 2_000_000 < settings.CHIMERA_KNOWLEDGE_MAX_UPLOAD_BYTES
    pdf = helpers.make_pdf(helpers.LISBON_PDF_LINES, padding=2_000_000)
    response = upload(alice_client, "Lisbon.pdf", pdf)
    assert "Added “Lisbon”: 1 passage." in response.content.decode()
    assert Document.objects.get().size == len(pdf)


def test_a_file_with_too_much_text_is_refused(alice_client, settings):
    settings.CHIMERA_KNOWLEDGE_MAX_CHARS = 500
    response = upload(alice_client, "long.md", b"word " * 300, follow=False)
    assert response.status_code == 400
    assert "has 1,499 characters of text; the limit is 500." in response.content.decode()


def test_a_pdf_with_too_much_text_is_refused_without_reading_it_all(alice_client, settings):
    settings.CHIMERA_KNOWLEDGE_MAX_CHARS = 100
    response = upload(alice_client, "Lisbon.pdf", helpers.make_pdf(helpers.LISBON_PDF_LINES), follow=False)
    assert response.status_code == 400
    assert "has more than 100 characters of text" in response.content.decode()


def test_a_file_alone_is_enough(alice_client, alice):
    response = alice_client.post("/knowledge/", {"file": SimpleUploadedFile("only.txt", b"Just a file.")})
    assert response.status_code == 302
    assert Document.objects.get(user=alice).title == "only"


def test_a_post_without_a_file_asks_for_one(alice_client):
    response = alice_client.post("/knowledge/", {"title": "nothing"})
    assert response.status_code == 400
    assert "Choose a file to add." in response.content.decode()


def test_utf8_with_a_bom_and_utf16_are_read(alice_client, alice):
    upload(alice_client, "bom.txt", "\ufeffCrème brûlée needs a blowtorch.".encode())
    upload(alice_client, "wide.txt", "Ünïcödé in UTF-16 works too.".encode("utf-16"))
    texts = sorted(Chunk.objects.filter(user=alice).values_list("text", flat=True))
    assert texts == ["Crème brûlée needs a blowtorch.", "Ünïcödé in UTF-16 works too."]


def test_a_hostile_file_name_is_cleaned(alice_client, alice):
    upload(alice_client, "../../etc/pass\x07wd.txt", b"harmless text")
    doc = Document.objects.get(user=alice)
    assert doc.filename == "passwd.txt"


def test_another_user_gets_404_for_view_and_delete(client, alice, bob):
    client.login(username="alice", password=PASSWORD)
    upload(client, "Invoices.txt", helpers.INVOICES.encode())
    doc = Document.objects.get(user=alice)
    client.logout()
    client.login(username="bob", password=PASSWORD)
    assert client.get(f"/knowledge/{doc.id}/").status_code == 404
    assert client.get(f"/knowledge/{doc.id}/delete/").status_code == 404
    assert client.post(f"/knowledge/{doc.id}/delete/").status_code == 404
    assert Document.objects.filter(id=doc.id).exists()
    assert "Invoices" not in client.get("/knowledge/").content.decode()


def test_the_upload_form_needs_the_csrf_token(alice):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.login(username="alice", password=PASSWORD)
    file = SimpleUploadedFile("a.txt", b"text")
    assert strict.post("/knowledge/", {"file": file}).status_code == 403
    assert not Document.objects.exists()
