import pytest
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import PermissionDenied, ValidationError

from panel.accounts.models import User
from panel.core.audit import services as audit
from panel.core.audit.models import JournalEntry, ObjectChange
from panel.nodes.models import Node
from panel.plans import services as plans
from panel.plans.models import Plan
from tests.panel.tenants import make_tenants

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def changes_of(obj) -> list[ObjectChange]:
    return list(ObjectChange.objects.filter(content_type=ContentType.objects.get_for_model(obj),
                                            object_id=str(obj.pk)).order_by("time", "pk"))


def test_create_update_delete_are_logged_with_before_after_and_context():
    t = make_tenants()
    with audit.change_context(source="node-report", user=t.admin, request_id="req-42"):
        plan = plans.create_plan(t.admin, name="p1", ram=2**30)
        plan.ram = 2**31
        plan.save()
        plan.save()  # nothing changed: no row
    plan_id = plan.pk
    plan.delete()
    create, update, delete = (c for c in ObjectChange.objects.filter(object_id=str(plan_id),
                                                                     content_type__model="plan").order_by("pk"))
    assert (create.action, create.before, create.after["ram"]) == ("create", None, 2**30)
    assert (update.before["ram"], update.after["ram"], update.changed) == (2**30, 2**31, ["ram"])
    assert (update.user, update.source, update.request_id) == (t.admin, "node-report", "req-42")
    assert (delete.action, delete.after, delete.source, delete.user) == ("delete", None, "system", None)


def test_secrets_are_redacted_but_their_change_is_recorded():
    t = make_tenants()
    user = User.objects.get(pk=t.customer1.pk)
    user.set_password("another-long-password")
    user.save()
    change = changes_of(user)[-1]
    assert change.changed == ["password"]
    assert change.before["password"] == change.after["password"] == "********"
    user.last_login = user.date_joined
    user.save()
    assert changes_of(user)[-1] == change  # last_login is excluded


def test_high_volume_node_fields_are_not_logged():
    node = Node.objects.create(name="n1")
    node.facts = {"kernel": "6.1"}
    node.save()
    assert [c.action for c in changes_of(node)] == ["create"]


def test_changes_are_visible_only_for_visible_objects():
    t = make_tenants()
    p1 = plans.create_plan(t.reseller1, name="r1")
    p2 = plans.create_plan(t.reseller2, name="r2")
    visible = ObjectChange.objects.restrict(t.reseller1)
    assert visible.filter(object_id=str(p1.pk), content_type__model="plan").exists()
    assert not visible.filter(object_id=str(p2.pk), content_type__model="plan").exists()
    assert not visible.filter(object_id=str(t.customer2.pk), content_type__model="user").exists()
    assert visible.filter(object_id=str(t.customer1.pk), content_type__model="user").exists()
    assert ObjectChange.objects.restrict(t.admin).count() == ObjectChange.objects.count()
    assert not ObjectChange.objects.restrict(t.admin, "change").exists()


def test_journal_notes():
    t = make_tenants()
    note = audit.add_note(t.reseller1, t.customer1, "Asked for a bigger disk.")
    assert note.author == t.reseller1
    with pytest.raises(ValidationError):
        audit.add_note(t.reseller1, t.customer2, "not mine")
    with pytest.raises(PermissionDenied):
        audit.add_note(t.customer1, t.customer1, "self")
    with pytest.raises(ValidationError):
        audit.add_note(t.admin, Plan.objects.first(), "  ")
    assert list(JournalEntry.objects.restrict(t.reseller1)) == [note]
    assert not JournalEntry.objects.restrict(t.reseller2).exists()
    assert not JournalEntry.objects.restrict(t.customer1).exists()
    assert list(JournalEntry.objects.restrict(t.admin)) == [note]
