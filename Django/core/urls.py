from django.urls import path

from . import views

app_name = "core"

urlpatterns = [
    path("", views.index, name="index"),
    path("healthz", views.healthz, name="healthz"),
    path("readyz", views.readyz, name="readyz"),
    path("metrics", views.metrics, name="metrics"),
    # Developers only (views.debug_endpoint): 404 unless DEBUG_ENDPOINTS.
    path("api/status", views.api_status, name="api-status"),
    path("api/ping", views.ping, name="api-ping"),
    path("debug/slow", views.slow, name="debug-slow"),
]
