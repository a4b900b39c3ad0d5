from __future__ import annotations

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from knowledge.extract import UploadRejected, check_upload
from knowledge.index import add_document
from knowledge.models import Chunk, Document


class UploadForm(forms.Form):
    # Empty files pass the form so that the upload's own check can say so by name.
    file = forms.FileField(allow_empty_file=True, error_messages={"required": "Choose a file to add."})
    title = forms.CharField(max_length=200, required=False, strip=True)


def _get_document_for_user(request, document_id) -> Document:
    return get_object_or_404(Document, id=document_id, user=request.user)


@login_required
@require_http_methods(["GET", "POST"])
def index(request):
    errors: list[str] = []
    if request.method == "POST":
        form = UploadForm(request.POST, request.FILES)  # bound even when only a file was sent
        if form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                check_upload(upload.name, upload.size, settings.CHIMERA_KNOWLEDGE_MAX_UPLOAD_BYTES)
                data = upload.read()
                document = add_document(request.user, upload.name, data, form.cleaned_data["title"])
            except UploadRejected as exc:
                errors.append(exc.message)
            else:
                count = document.chunks.count()
                messages.success(
                    request, f"Added “{document.title}”: {count} passage{'s' if count != 1 else ''}."
                )
                return redirect("knowledge:index")
        else:
            errors.extend(str(e) for field_errors in form.errors.values() for e in field_errors)
    documents = Document.objects.filter(user=request.user).annotate(chunk_count=Count("chunks"))
    context = {
        "documents": documents,
        "errors": errors,
        "max_bytes": settings.CHIMERA_KNOWLEDGE_MAX_UPLOAD_BYTES,
        "conversation_passages": Chunk.objects.filter(user=request.user, document__isnull=True).count(),
    }
    return render(request, "knowledge/index.html", context, status=400 if errors else 200)


@login_required
@require_http_methods(["GET"])
def document(request, document_id):
    doc = _get_document_for_user(request, document_id)
    return render(request, "knowledge/document.html", {"document": doc, "chunks": doc.chunks.all()})


@login_required
@require_http_methods(["GET", "POST"])
def delete(request, document_id):
    doc = _get_document_for_user(request, document_id)
    if request.method == "POST":
        title = doc.title
        doc.delete()  # its chunks go with it (and out of the full-text index)
        messages.success(request, f"Deleted “{title}”.")
        return redirect("knowledge:index")
    return render(request, "knowledge/delete.html", {"document": doc, "chunk_count": doc.chunks.count()})
