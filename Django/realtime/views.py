from django.http import JsonResponse
from django.views.decorators.http import require_POST

from .tickets import ticket_issue, ticket_max_age


@require_POST
def ticket_create(request):
    """A ticket for the signed-in user's next socket (realtime/tickets.py). Signed in by
    the session, so a POST needs the CSRF token, as every form of the site does."""
    if not request.user.is_authenticated:
        return JsonResponse({"detail": "sign in first"}, status=401)
    ticket = ticket_issue(request.user)
    return JsonResponse({"ticket": ticket, "expires_in": ticket_max_age()}, status=201)
