from django.urls import path

from chat import views

app_name = "chat"
urlpatterns = [
    path("", views.index, name="index"),
    path("chat/", views.index),
    path("c/<uuid:conversation_id>/", views.conversation, name="conversation"),
    path("c/<uuid:conversation_id>/select/<uuid:message_id>/", views.select, name="select"),
    path("c/<uuid:conversation_id>/fork/<uuid:message_id>/", views.fork, name="fork"),
]
