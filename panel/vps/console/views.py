"""The console page of a VPS and the ticket it asks for before it opens the WebSocket."""

from __future__ import annotations

from typing import Any

import redis
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from panel.core import views as generic
from panel.core.permissions import CHANGE
from panel.vps.console import tickets
from panel.vps.console.models import ConsoleMode
from panel.vps.models import VPS
from worker import protocol


def _mode(request: HttpRequest) -> str:
    mode = request.GET.get("mode") or request.POST.get("mode") or ConsoleMode.CONSOLE
    return mode if mode in protocol.CONSOLE_MODES else ConsoleMode.CONSOLE


class ConsoleView(generic.PanelView):
    """xterm.js in the page; `?mode=shell` for a fresh login shell instead of the VPS's console."""

    queryset = VPS.objects.select_related("node")

    def get(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        vps = self.get_object(request, CHANGE, **kwargs)
        mode = _mode(request)
        return render(request, "vps/console.html", {
            "vps": vps, "mode": mode, "title": f"{ConsoleMode(mode).label} of {vps.hostname}",
            "modes": ConsoleMode.choices})


class TicketView(generic.PanelView):
    """POST: a single-use ticket for the WebSocket, valid CONSOLE_TICKET_SECONDS (JSON)."""

    queryset = VPS.objects.select_related("node")

    def post(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        vps = self.get_object(request, CHANGE, **kwargs)
        try:
            ticket = tickets.issue(request.user, vps, _mode(request))
        except (PermissionDenied, ValidationError) as exc:
            return JsonResponse({"error": " ".join(getattr(exc, "messages", [str(exc)]))}, status=409)
        except redis.RedisError:
            return JsonResponse({"error": "The console service cannot be reached right now. Try again in a minute; "
                                          "if it stays so, tell your provider."}, status=503)
        return JsonResponse({"ticket": ticket, "expires_in": protocol.CONSOLE_TICKET_SECONDS})


def websocket_only(request: HttpRequest, **kwargs: Any) -> HttpResponse:
    """The console WebSocket's URL (served by panel.asgi before Django); plain HTTP gets 426."""
    return HttpResponse("The console speaks WebSocket only.", status=426, content_type="text/plain")
