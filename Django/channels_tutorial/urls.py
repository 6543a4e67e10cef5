from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("", include("core.urls")),
    path("talk/", include("talk.urls")),
    path("accounts/", include("accounts.urls")),
    path("", include("realtime.urls")),
    path("admin/", admin.site.urls),
]
