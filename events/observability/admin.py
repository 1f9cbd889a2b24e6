"""The trace view and the failed-message console in the admin (staff only), each an entry of the
admin's index under *Events*: *Trace: what happened to …* and *Failed messages (grouped)*."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse

from events.models import DeadLetter, FailedMessageGroup, Trace
from events.observability import console, trace


class _ViewOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Trace)
class TraceAdmin(_ViewOnly):
    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return request.user.is_active and request.user.is_staff and request.user.has_perm("events.view_storedevent")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        query = request.GET.get("q", "").strip()
        found = trace.find(query) if query else None
        context = {
            **self.admin_site.each_context(request),
            "title": f"Trace: {query}" if query else "Trace: what happened to …",
            "opts": self.model._meta,
            "query": query,
            "trace": found,
            "limit": trace.LIMIT,
        }
        return TemplateResponse(request, "admin/events/trace.html", context)


@admin.register(FailedMessageGroup)
class FailedMessageGroupAdmin(_ViewOnly):
    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return request.user.is_active and request.user.is_staff and request.user.has_perm("events.view_deadletter")

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.has_view_permission(request)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            return self._act(request)
        status = request.GET.get("status", DeadLetter.Status.OPEN)
        if status not in DeadLetter.Status.values:
            status = DeadLetter.Status.OPEN
        context = {
            **self.admin_site.each_context(request),
            "title": "Failed messages: dead letters grouped by cause",
            "opts": self.model._meta,
            "groups": console.groups(status),
            "status": status,
            "statuses": DeadLetter.Status.values,
            "can_act": request.user.has_perm("events.change_deadletter") and status == DeadLetter.Status.OPEN,
            "dead_letters_url": reverse("admin:events_deadletter_changelist"),
        }
        return TemplateResponse(request, "admin/events/failed_messages.html", context)

    def _act(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("events.change_deadletter"):
            raise PermissionDenied
        back = HttpResponseRedirect(reverse("admin:events_failedmessagegroup_changelist"))
        try:
            fingerprint = console.resolve(request.POST.get("group", ""))
        except console.UnknownGroup as exc:
            self.message_user(request, str(exc), messages.WARNING)
            return back
        action = request.POST.get("action")
        if action == "retry":
            result = console.group_retry(fingerprint=fingerprint)
            self.message_user(request, f"Group {fingerprint[:12]}: {result.replayed} dead letter(s) replayed.", messages.SUCCESS)
            for pk, reason in result.refused:
                self.message_user(request, f"#{pk} not replayed: {reason}", messages.WARNING)
        elif action == "archive":
            count = console.group_archive(fingerprint=fingerprint)
            self.message_user(request, f"Group {fingerprint[:12]}: {count} dead letter(s) archived.", messages.SUCCESS)
        else:
            self.message_user(request, f"unknown action {action!r}", messages.WARNING)
        return back
