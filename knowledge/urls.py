from django.urls import path

from knowledge import views

app_name = "knowledge"
urlpatterns = [
    path("", views.index, name="index"),
    path("<uuid:document_id>/", views.document, name="document"),
    path("<uuid:document_id>/delete/", views.delete, name="delete"),
]
