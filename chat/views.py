from __future__ import annotations

from asgiref.sync import async_to_sync
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from chat import conversations, export, text, tree
from chat.access import conversation_for
from chat.models import Conversation
from chat.request import tiers_for
from chat.turns import settle_orphans


def _get_conversation_for_user(request, conversation_id) -> Conversation:
    return conversation_for(request.user, conversation_id)  # NotFound is an Http404


def _sidebar(request) -> dict:
    q = text.storable(request.GET.get("q", "")).strip()[:200]
    archived = request.GET.get("archived") == "1"
    conversations = Conversation.objects.filter(user=request.user, is_archived=archived)
    if q:
        conversations = conversations.filter(
            Q(title__icontains=q) | Q(messages__content__icontains=q)
        ).distinct()
    return {
        "conversations": conversations.only("id", "title", "updated_at")[:100],
        "q": q,
        "archived_view": archived,
    }


@login_required
@require_GET
def index(request):
    return render(
        request,
        "chat/index.html",
        {
            **_sidebar(request),
            "messages": [],
            "conversation": None,
            "tiers": tiers_for(request.user),
            "tier": "balanced",
        },
    )


@login_required
@require_GET
def conversation(request, conversation_id):
    convo = _get_conversation_for_user(request, conversation_id)
    settle_orphans(conversation_id=convo.id)
    return render(
        request,
        "chat/index.html",
        {
            **_sidebar(request),
            "conversation": convo,
            "messages": tree.branch_messages(convo),
            "tiers": tiers_for(request.user),
            "tier": (convo.settings or {}).get("tier", "balanced"),
        },
    )


@login_required
@require_POST
def select(request, conversation_id, message_id):
    convo = _get_conversation_for_user(request, conversation_id)
    if not tree.select_branch(convo, message_id):
        raise Http404("No such message in this conversation.")
    if request.htmx:
        return render(request, "chat/partials/_branch.html", {"messages": tree.branch_messages(convo)})
    return redirect("chat:conversation", convo.id)


@login_required
@require_POST
def fork(request, conversation_id, message_id):
    convo = _get_conversation_for_user(request, conversation_id)
    new = tree.fork(convo, message_id)
    if new is None:
        raise Http404("No such message in this conversation.")
    if request.htmx:
        response = HttpResponse(status=204)
        response["HX-Redirect"] = reverse("chat:conversation", args=[new.id])
        return response
    return redirect("chat:conversation", new.id)


# ---- managing a conversation (plain forms: they work without JavaScript) ------------------------
@login_required
@require_POST
def rename(request, conversation_id):
    convo = _get_conversation_for_user(request, conversation_id)
    conversations.rename(convo, text.storable(request.POST.get("title", "")))
    return redirect("chat:conversation", convo.id)


@login_required
@require_POST
def archive(request, conversation_id):
    convo = _get_conversation_for_user(request, conversation_id)
    conversations.set_archived(convo, request.POST.get("archived") == "1")
    return redirect("chat:conversation", convo.id)


@login_required
@require_POST
def delete(request, conversation_id):
    convo = _get_conversation_for_user(request, conversation_id)
    async_to_sync(conversations.delete)(request.user, convo)
    return redirect("chat:index")


@login_required
@require_GET
def export_conversation(request, conversation_id, fmt):
    if fmt not in export.FORMATS:
        raise Http404("Export as md or json.")
    convo = _get_conversation_for_user(request, conversation_id)
    return export.as_response(export.export(convo, fmt))
