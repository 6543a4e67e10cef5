from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.forms import UserCreationForm
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme


def signup(request):
    """Sign-up with Django's own form; signed in at once, then back where they came from."""
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}):
        next_url = ""
    form = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        login(request, form.save())
        return redirect(next_url or settings.LOGIN_REDIRECT_URL)
    status = 400 if form.errors else 200
    return render(request, "accounts/signup.html", {"form": form, "next": next_url}, status=status)
