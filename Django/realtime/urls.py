from django.urls import path

from . import views

app_name = "realtime"

urlpatterns = [
    path("api/tickets", views.ticket_create, name="tickets"),
]
