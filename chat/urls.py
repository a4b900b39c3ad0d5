from django.urls import path

from chat import views

app_name = "chat"
urlpatterns = [
    path("", views.index, name="index"),
    path("chat/", views.index),
    path("c/<uuid:conversation_id>/", views.conversation, name="conversation"),
    path("c/<uuid:conversation_id>/select/<uuid:message_id>/", views.select, name="select"),
    path("c/<uuid:conversation_id>/fork/<uuid:message_id>/", views.fork, name="fork"),
    path("c/<uuid:conversation_id>/rename/", views.rename, name="rename"),
    path("c/<uuid:conversation_id>/archive/", views.archive, name="archive"),
    path("c/<uuid:conversation_id>/delete/", views.delete, name="delete"),
    path("c/<uuid:conversation_id>/export.<str:fmt>", views.export_conversation, name="export"),
]
