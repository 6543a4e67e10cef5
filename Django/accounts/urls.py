from django.urls import include, path

from . import views

urlpatterns = [
    path("signup/", views.signup, name="signup"),
    # Django's log-in, log-out (POST) and password views, under the names Django gives them.
    path("", include("django.contrib.auth.urls")),
]
