from django.contrib import admin

from chat.models import Conversation, Message


class MessageInline(admin.TabularInline):
    model = Message
    extra = 0
    fields = ("role", "status", "content", "parent_message", "is_edited", "created_at")
    readonly_fields = ("created_at", "parent_message")
    show_change_link = True


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ("__str__", "user", "is_archived", "created_at", "updated_at")
    list_filter = ("is_archived",)
    search_fields = ("title", "user__username", "id")
    raw_id_fields = ("user", "parent")
    readonly_fields = ("active_leaf", "created_at", "updated_at")
    inlines = [MessageInline]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ("__str__", "conversation", "role", "status", "created_at")
    list_filter = ("role", "status")
    search_fields = ("content", "id", "conversation__id")
    raw_id_fields = ("conversation", "parent_message")
    readonly_fields = ("created_at", "updated_at")
