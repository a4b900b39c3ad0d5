from django.urls import path

from usage import views

app_name = "usage"
urlpatterns = [
    path("dashboard/", views.dashboard, name="dashboard"),
]
