from django.urls import reverse

from panel.core.tables import Column, Table


def change_url(change) -> str:
    return reverse("core:change", args=[change.pk])


class ObjectChangeTable(Table):
    columns = [
        Column("time", link=change_url),
        Column("user_name", "Who", template="audit/cells/who.html"),
        Column("action"),
        Column("content_type__model", "Type", order_by="content_type__model"),
        Column("object_repr", "Object", template="audit/cells/object.html"),
        Column("changed", "Fields", orderable=False, template="audit/cells/fields.html"),
        Column("source"),
        Column("request_id", "Request", template="audit/cells/request.html"),
    ]
    default_order = "-time"
    empty_text = "No changes match."
