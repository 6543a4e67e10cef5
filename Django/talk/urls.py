from django.urls import path

from . import views

app_name = "talk"

urlpatterns = [
    path("", views.index, name="index"),
    path("<path:room>/", views.room, name="room"),
]
