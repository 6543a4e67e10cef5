from django.apps import AppConfig
from django.conf import settings


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self):
        if getattr(settings, "METRICS", True):
            from axes.signals import user_locked_out
            from django.contrib.auth.signals import user_logged_in, user_login_failed

            from . import metrics

            user_logged_in.connect(metrics.count_login, dispatch_uid="accounts.logins")
            user_login_failed.connect(
                metrics.count_login_failure, dispatch_uid="accounts.login_failures"
            )
            user_locked_out.connect(metrics.count_locked_out, dispatch_uid="accounts.locked_out")
