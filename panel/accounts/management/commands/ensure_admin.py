"""Create the first admin account unless one exists; print its password once."""

import os
import secrets

from django.core.management.base import BaseCommand, CommandError

from panel.accounts.choices import Role
from panel.accounts.models import User


class Command(BaseCommand):
    help = ("Create an admin (CTPANEL_ADMIN_USER / CTPANEL_ADMIN_PASSWORD, or 'admin' with a "
            "generated password printed once) unless an admin exists.")

    def handle(self, *args, **options):
        if User.objects.filter(role=Role.ADMIN, is_active=True).exists():
            self.stdout.write("admin account: exists (unchanged)")
            return
        username = os.environ.get("CTPANEL_ADMIN_USER", "admin").strip()
        password = os.environ.get("CTPANEL_ADMIN_PASSWORD", "")
        generated = not password
        password = password or secrets.token_urlsafe(12)
        if User.objects.filter(username=username).exists():
            raise CommandError(f"user {username!r} exists but is not an active admin; "
                               "set CTPANEL_ADMIN_USER to another name")
        User.objects.create_user(username=username, password=password, role=Role.ADMIN)
        if generated:
            self.stdout.write(self.style.SUCCESS(
                f"admin account created: user {username!r}, password {password!r} "
                "(shown once; change it after logging in)"))
        else:
            self.stdout.write(self.style.SUCCESS(f"admin account created: user {username!r}"))
