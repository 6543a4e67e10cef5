from django.db import models


class SpentTicket(models.Model):
    """A ticket that opened a socket (realtime/tickets.py): a second use is refused.
    Kept until it would have expired anyway."""

    nonce = models.CharField(max_length=32, unique=True)
    expires_at = models.DateTimeField(db_index=True)

    def __str__(self):
        return self.nonce
