from django.conf import settings
from django.urls import path

from . import views

app_name = "core"

urlpatterns = [
    path("", views.index, name="index"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("api/status", views.api_status, name="api-status"),
    path("api/ping", views.ping, name="api-ping"),
]

if settings.DEBUG:
    urlpatterns += [path("debug/slow", views.slow, name="debug-slow")]
