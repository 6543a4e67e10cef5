"""Channels' Origin check, with its refusals counted (realtime_handshakes_refused_total)."""

from channels.security import websocket

from . import metrics


class CountedOriginValidator(websocket.OriginValidator):
    def valid_origin(self, parsed_origin):
        valid = super().valid_origin(parsed_origin)
        if not valid:
            # Refused before routing, so no consumer's route is known yet.
            metrics.HANDSHAKES_REFUSED.labels("", "origin").inc()
        return valid


def AllowedHostsOriginValidator(application):  # noqa: N802 (Channels' name)
    """Channels' AllowedHostsOriginValidator (sockets only from pages of ALLOWED_HOSTS),
    its refusals counted."""
    channels_validator = websocket.AllowedHostsOriginValidator(application)
    return CountedOriginValidator(application, channels_validator.allowed_origins)
