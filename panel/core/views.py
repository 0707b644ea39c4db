"""Generic views the apps' views are built from (NetBox style: a few attributes each).

Every queryset goes through the model's `restrict(user, action)` (one
filter per model, panel.core.permissions): an object the user may not view
answers 404, one it may view but not change answers 403 on edit and
delete. `roles` keeps whole pages to some roles (403 for the others).
Services do their own permission checks; a view only turns their
`ValidationError` into form errors.

htmx: a request with `HX-Request` gets only the part of the page it asked
for (the table of a list, the `partial_template` of an object), which is
how lists and operations refresh themselves (`poll` seconds; see
docs/DESIGN.md, "Live state in the browser").
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View

from panel.core.filtersets import OperationFilterSet
from panel.core.models import Operation
from panel.core.permissions import CHANGE, VIEW, is_admin, tenant_q
from panel.core.tables import OperationTable, Table

# htmx stops polling an element when its answer has this status.
HTMX_STOP_POLLING = 286


def is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def add_service_error(form: forms.BaseForm, exc: ValidationError) -> None:
    """Put a service's ValidationError on the form: on its field when the form has one."""
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc)


def restrict_choices(form: forms.BaseForm, user: Any) -> None:
    """Offer in every model choice only the objects `user` may view (no other tenant's names in a list)."""
    for field in form.fields.values():
        queryset = getattr(field, "queryset", None)
        if queryset is not None and hasattr(queryset, "restrict"):
            field.queryset = queryset.restrict(user, VIEW)


def safe_next(request: HttpRequest, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return default


class PanelView(View):
    """A signed-in user of one of `roles` (empty: any role)."""

    roles: tuple[str, ...] = ()
    queryset: models.QuerySet | None = None

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if self.roles and getattr(request.user, "role", None) not in self.roles:
            raise PermissionDenied("This page is not for your role.")
        return super().dispatch(request, *args, **kwargs)

    def restrict(self, request: HttpRequest, action: str) -> models.QuerySet:
        """The objects `request.user` may `action`; override for models without `restrict`."""
        return self.queryset.all().restrict(request.user, action)

    def get_object(self, request: HttpRequest, action: str = VIEW, **kwargs: Any) -> models.Model:
        """404 unless viewable; 403 unless `action` is allowed too."""
        obj = get_object_or_404(self.restrict(request, VIEW), **kwargs)
        if action != VIEW and not self.restrict(request, action).filter(pk=obj.pk).exists():
            raise PermissionDenied("You may view this but not change it.")
        return obj

    def can(self, request: HttpRequest, action: str, obj: models.Model) -> bool:
        return self.restrict(request, action).filter(pk=obj.pk).exists()

    def get_extra_context(self, request: HttpRequest, **kwargs: Any) -> dict[str, Any]:
        return {}


class ObjectListView(PanelView):
    """A table of what the user may view, filtered by the app's filterset, sorted and paged."""

    table: type[Table]
    filterset: type | None = None
    template_name = "core/object_list.html"
    title = ""
    add_url = ""  # URL name of the create view, shown as a button
    add_roles: tuple[str, ...] = ()  # who sees that button (empty: everyone who sees the list)
    export = False  # ?export=csv downloads the whole filtered list
    poll = 0  # seconds between refreshes of the table; 0: none
    filter_labels: dict[str, str] = {}  # labels for filters whose generated ones read badly

    def get_queryset(self, request: HttpRequest) -> models.QuerySet:
        return self.restrict(request, VIEW)

    def get(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        queryset = self.get_queryset(request)
        filter_form = None
        if self.filterset is not None:
            filterset = self.filterset(request.GET or None, queryset=queryset, request=request)
            for name in self.hidden_filters(request):
                filterset.form.fields.pop(name, None)
            for name, field in filterset.form.fields.items():
                field.label = self.filter_labels.get(name, field.label)
                if isinstance(field, forms.DateTimeField):
                    field.widget.input_type = "datetime-local"
            restrict_choices(filterset.form, request.user)
            filter_form = filterset.form
            queryset = filterset.qs if filterset.is_bound else queryset
        if self.export and request.GET.get("export") == "csv":
            table = self.table(queryset, request, paginate=False)
            response = HttpResponse(table.as_csv(), content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="{self.csv_name()}.csv"'
            return response
        table = self.table(queryset, request)
        context = {"title": self.title or str(queryset.model._meta.verbose_name_plural).capitalize(),
                   "table": table, "filter_form": filter_form, "poll": self.poll, "export": self.export,
                   "add_url": self.add_url if self.add_url and (
                       not self.add_roles or request.user.role in self.add_roles) else "",
                   **self.get_extra_context(request, **kwargs)}
        if is_htmx(request) and request.headers.get("HX-Target") == "table-region":
            return render(request, "core/table_region.html", context)
        return render(request, self.template_name, context)

    def hidden_filters(self, request: HttpRequest) -> tuple[str, ...]:
        """Filters that make no sense for this user (their form fields are left out, so they never apply)."""
        return ()

    def csv_name(self) -> str:
        return (self.title or "export").lower().replace(" ", "-")


class ObjectView(PanelView):
    """One object the user may view. With `partial_template`, htmx requests get just that part."""

    template_name = ""
    partial_template = ""

    def get(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        obj = self.get_object(request, VIEW, **kwargs)
        context = {"object": obj, "can_change": self.can(request, CHANGE, obj),
                   **self.get_extra_context(request, obj=obj)}
        if self.partial_template and is_htmx(request):
            return render(request, self.partial_template, context, status=self.partial_status(obj))
        return render(request, self.template_name, context)

    def get_extra_context(self, request: HttpRequest, **kwargs: Any) -> dict[str, Any]:
        return {}

    def partial_status(self, obj: models.Model) -> int:
        """HTMX_STOP_POLLING once the object will not change any more."""
        return 200


class ObjectEditView(PanelView):
    """Create (no URL arguments) or edit an object through the app's services.

    Subclasses implement `save(request, form, obj)`: obj is None on create.
    """

    form: type[forms.BaseForm]
    template_name = "core/object_edit.html"
    success_message = "Saved."

    def get_initial(self, request: HttpRequest, obj: models.Model | None) -> dict[str, Any]:
        return {}

    def get_form_class(self, request: HttpRequest, obj: models.Model | None) -> type[forms.BaseForm]:
        return self.form

    def get_form(self, request: HttpRequest, obj: models.Model | None) -> forms.BaseForm:
        form_class = self.get_form_class(request, obj)
        kwargs: dict[str, Any] = {"initial": self.get_initial(request, obj), "user": request.user}
        if issubclass(form_class, forms.BaseModelForm):
            kwargs["instance"] = obj
        form = form_class(request.POST if request.method == "POST" else None, **kwargs)
        restrict_choices(form, request.user)
        return form

    def save(self, request: HttpRequest, form: forms.BaseForm, obj: models.Model | None) -> models.Model:
        raise NotImplementedError

    def success_url(self, request: HttpRequest, obj: models.Model) -> str:
        return obj.get_absolute_url()

    def get_extra_context(self, request: HttpRequest, **kwargs: Any) -> dict[str, Any]:
        return {}

    def _object(self, request: HttpRequest, kwargs: dict[str, Any]) -> models.Model | None:
        return self.get_object(request, CHANGE, **kwargs) if kwargs else None

    def get(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        obj = self._object(request, kwargs)
        return self._render(request, self.get_form(request, obj), obj)

    def post(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        obj = self._object(request, kwargs)
        form = self.get_form(request, obj)
        if form.is_valid():
            try:
                saved = self.save(request, form, obj)
            except ValidationError as exc:
                add_service_error(form, exc)
            else:
                messages.success(request, self.success_message)
                return HttpResponseRedirect(self.success_url(request, saved))
        return self._render(request, form, obj, status=400)

    def _render(self, request: HttpRequest, form: forms.BaseForm, obj: models.Model | None,
                status: int = 200) -> HttpResponse:
        model = self.queryset.model
        title = f"Edit {obj}" if obj is not None else f"New {model._meta.verbose_name}"
        context = {"form": form, "object": obj, "title": title,
                   **self.get_extra_context(request, obj=obj)}
        return render(request, self.template_name, context, status=status)


class ObjectDeleteView(PanelView):
    """Confirm, then delete through `delete(request, obj)` (services may refuse with a ValidationError)."""

    template_name = "core/object_delete.html"
    success_url = "/"

    def delete(self, request: HttpRequest, obj: models.Model) -> None:
        obj.delete()

    def get(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        obj = self.get_object(request, CHANGE, **kwargs)
        return render(request, self.template_name, {"object": obj, "title": f"Delete {obj}"})

    def post(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        obj = self.get_object(request, CHANGE, **kwargs)
        name = str(obj)
        try:
            self.delete(request, obj)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return HttpResponseRedirect(safe_next(request, self.success_url))
        messages.success(request, f"{name} deleted.")
        return HttpResponseRedirect(self.success_url)


class ObjectActionView(PanelView):
    """A POST that does one thing to one object (suspend, mark read...), then goes back."""

    action = CHANGE
    success_url = "/"
    http_method_names = ["post"]

    def perform(self, request: HttpRequest, obj: models.Model) -> str:
        """Do it; return the message to show."""
        raise NotImplementedError

    def post(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        obj = self.get_object(request, self.action, **kwargs)
        try:
            text = self.perform(request, obj)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            messages.success(request, text)
        return HttpResponseRedirect(safe_next(request, self.success_url))


# --- operations: every node action, with its progress ----------------------------------------------

class OperationListView(ObjectListView):
    """Admins: every operation; others those they (or a reseller's customers) started."""

    queryset = Operation.objects.select_related("user")
    filterset = OperationFilterSet
    table = OperationTable
    poll = 3

    def restrict(self, request: HttpRequest, action: str) -> models.QuerySet:
        return self.queryset.filter(tenant_q(request.user, "user"))

    def hidden_filters(self, request: HttpRequest) -> tuple[str, ...]:
        return () if is_admin(request.user) else ("node_name",)


class OperationView(ObjectView):
    """One operation; its progress part refreshes itself until the operation ends."""

    queryset = Operation.objects.select_related("user")
    template_name = "core/operation.html"
    partial_template = "core/operation_progress.html"

    def restrict(self, request: HttpRequest, action: str) -> models.QuerySet:
        return self.queryset.filter(tenant_q(request.user, "user")) if action == VIEW else self.queryset.none()

    def partial_status(self, obj: models.Model) -> int:
        return HTMX_STOP_POLLING if obj.is_terminal else 200
