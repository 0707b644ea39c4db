"""ASGI entry point: `uvicorn panel.asgi:application`.

Django's application serves HTTP; the console WebSocket (`panel.vps.console.websocket`) is the one
WebSocket route, a plain ASGI endpoint (no Channels: docs/DESIGN.md, "Browser console").
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "panel.settings.dev")
django_application = get_asgi_application()

from panel.vps.console.websocket import console_socket, matches  # noqa: E402  (needs the apps loaded)


async def application(scope, receive, send):
    if scope["type"] == "websocket":
        if matches(scope):
            return await console_socket(scope, receive, send)
        await receive()
        return await send({"type": "websocket.close", "code": 4404})
    return await django_application(scope, receive, send)
