from panel.core.audit.services import change_context


class AuditContextMiddleware:
    """Every HTTP request is a change context ("api" under /api/, "web" otherwise)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        source = "api" if request.path.startswith("/api/") else "web"
        with change_context(source=source, request=request):
            return self.get_response(request)
