"""The bus in the admin, read-only: the event log and where each event went, the inbox, the
dead letters (inspect, replay), and the late events each handler skipped."""

from __future__ import annotations

import json
import uuid
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from events import subscriptions
from events.deadletters import NotReplayable, dead_letter_replay
from events.errors import EventError
from events.models import DeadLetter, HandlerSkips, InboxEntry, StoredEvent
from events.observability import admin as observability_admin  # noqa: F401 - the trace view and the failed-message console
from events.observability import console


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


def _pretty_json(value: Any) -> SafeString:
    return format_html("<pre style='margin:0'>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False))


def _truncated(text: str, length: int) -> str:
    return text if len(text) <= length else text[: length - 1] + "…"


class PublishedFilter(admin.SimpleListFilter):
    title = "published"
    parameter_name = "published"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "published"), ("no", "waiting"), ("rejected", "rejected")]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value() == "yes":
            return queryset.filter(published_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(published_at__isnull=True, rejected_reason="")
        if self.value() == "rejected":
            return queryset.exclude(rejected_reason="")
        return queryset


@admin.register(StoredEvent)
class StoredEventAdmin(ReadOnlyAdmin):
    # Narrow enough, with the filter column, for a 1,440-px screen.
    list_display = ["position", "event_id_column", "type_and_version", "subject_and_sequence", "time", "state"]
    list_display_links = ["position", "event_id_column"]
    list_filter = [PublishedFilter, "event_type", "topic"]
    search_fields = ["=event_id", "=subject", "=correlation_id", "=causation_id"]
    date_hierarchy = "timestamp"
    ordering = ["-position"]
    fieldsets = [
        ("Event", {"fields": ["event_id", "type_and_version", "source", "subject", "sequence", "timestamp", "pretty_data"]}),
        (
            "Where it went",
            {
                "fields": ["handlers", "dead_letters"],
                "description": "The handlers of this project's services that subscribe to the event, and the inbox row each "
                "wrote when it handled it; the dead letters the event became.",
            },
        ),
        ("Relay", {"fields": ["published_at", "rejected_reason", "claimed_by", "claimed_until"]}),
        ("Trace", {"fields": ["trace_link", "correlation_id", "causation_id", "metadata"]}),
    ]
    readonly_fields = ["type_and_version", "pretty_data", "handlers", "dead_letters", "trace_link"]

    @admin.display(description="whole flow")
    def trace_link(self, event: StoredEvent) -> SafeString:
        url = reverse("admin:events_trace_changelist")
        return format_html("<a href='{}?q={}'>trace this event's flow</a>", url, event.event_id)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return super().changelist_view(request, {"title": "Event log", **(extra_context or {})})

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return super().change_view(request, object_id, form_url, {"title": "Event", **(extra_context or {})})

    @admin.display(description="event ID")
    def event_id_column(self, event: StoredEvent) -> str:
        return str(event.event_id)

    @admin.display(description="type (version)", ordering="event_type")
    def type_and_version(self, event: StoredEvent) -> str:
        return f"{event.routing_key} ({event.event_version})"

    @admin.display(description="subject (sequence)", ordering="subject")
    def subject_and_sequence(self, event: StoredEvent) -> str:
        subject = _truncated(event.subject, 40) or "-"
        return f"{subject} ({event.sequence})" if event.sequence is not None else subject

    @admin.display(description="timestamp (UTC)", ordering="timestamp")
    def time(self, event: StoredEvent) -> str:
        return f"{event.timestamp:%Y-%m-%d %H:%M:%S}"

    @admin.display(description="relay")
    def state(self, event: StoredEvent) -> str:
        if event.rejected_reason:
            return f"rejected: {_truncated(event.rejected_reason, 50)}"
        if event.published_at is None:
            return "waiting"
        return f"published {event.published_at:%Y-%m-%d %H:%M:%S}"

    @admin.display(description="data")
    def pretty_data(self, event: StoredEvent) -> SafeString:
        return _pretty_json(event.data)

    @admin.display(description="handlers")
    def handlers(self, event: StoredEvent) -> SafeString | str:
        entries = {entry.handler: entry for entry in InboxEntry.objects.filter(event_id=str(event.event_id))}
        subscribed = {
            s.name: s.service
            for service in settings.SERVICES
            for s in subscriptions.for_service(service)
            if event.routing_key in s.event_type.routing_keys
        }
        names = sorted(subscribed.keys() | entries.keys())
        if not names:
            return "no handler of this project's services subscribes to it"
        rows = ((name, subscribed.get(name, "(no longer subscribed)"), _inbox_state(entries.get(name))) for name in names)
        return format_html(
            "<table><thead><tr><th>handler</th><th>service</th><th>inbox</th></tr></thead><tbody>{}</tbody></table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
        )

    @admin.display(description="dead letters")
    def dead_letters(self, event: StoredEvent) -> SafeString | str:
        letters = DeadLetter.objects.filter(event_id=str(event.event_id)).order_by("created_at")
        if not letters:
            return "none"
        return format_html(
            "<ul style='margin:0;padding-left:1em'>{}</ul>",
            format_html_join(
                "",
                "<li><a href='{}'>#{}</a> {} {}, {}: {}</li>",
                (
                    (
                        reverse("admin:events_deadletter_change", args=[letter.pk]),
                        letter.pk,
                        letter.service,
                        letter.handler or letter.get_stage_display(),
                        letter.status,
                        _truncated(letter.reason, 120),
                    )
                    for letter in letters
                ),
            ),
        )


def _inbox_state(entry: InboxEntry | None) -> str:
    if entry is None:
        return "not handled (yet)"
    done = "given up (see its dead letter)" if entry.dead_lettered else "handled"
    return f"{done} {entry.processed_at:%Y-%m-%d %H:%M:%S.%f}"[:-3]


@admin.register(InboxEntry)
class InboxEntryAdmin(ReadOnlyAdmin):
    list_display = ["event_id", "handler", "event_type", "processed_at", "attempt", "duration_ms", "dead_lettered"]
    list_filter = ["handler", "event_type", "dead_lettered"]
    search_fields = ["=event_id"]


@admin.register(HandlerSkips)
class HandlerSkipsAdmin(ReadOnlyAdmin):
    list_display = ["handler", "service", "late", "last_event_id", "last_skipped_at"]
    list_filter = ["service"]


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    """Read-only: a dead letter is inspected, and replayed (a list action) once its cause is fixed."""

    list_display = ["created_at", "status", "stage", "service", "handler", "event_type", "event_id", "attempts", "short_reason"]
    list_filter = ["status", "stage", "service", "handler", "event_type"]
    search_fields = ["=event_id", "=source", "reason"]
    actions = ["replay", "archive"]
    fieldsets = [
        (None, {"fields": ["created_at", "status", "replayed_at", "archived_at", "stage", "service", "handler", "attempts"]}),
        ("Why", {"fields": ["reason", "traceback"]}),
        (
            "The event",
            {
                "fields": [
                    "event_link",
                    "trace_link",
                    "fingerprint",
                    "source",
                    "event_type",
                    "event_version",
                    "pretty_envelope",
                    "traceparent",
                ]
            },
        ),
        ("The message", {"fields": ["routing_key", "content_type", "headers", "raw_body"]}),
    ]
    readonly_fields = ["event_link", "trace_link", "pretty_envelope"]

    @admin.display(description="whole flow")
    def trace_link(self, letter: DeadLetter) -> SafeString | str:
        if not letter.event_id:
            return "-"
        return format_html("<a href='{}?q={}'>trace</a>", reverse("admin:events_trace_changelist"), letter.event_id)

    @admin.action(description="Archive (set aside, no longer open)", permissions=["replay"])
    def archive(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        for dead_letter in queryset:
            console.dead_letter_archive(dead_letter=dead_letter)
        self.message_user(request, f"{len(queryset)} dead letter(s) archived.", messages.SUCCESS)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        title = "Dead letters: events that could not be handled (read-only: inspect, replay)"
        return super().changelist_view(request, {"title": title, **(extra_context or {})})

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        title = "Dead letter (read-only; replay it from the list of dead letters)"
        return super().change_view(request, object_id, form_url, {"title": title, **(extra_context or {})})

    @admin.display(description="reason")
    def short_reason(self, letter: DeadLetter) -> str:
        return _truncated(letter.reason, 80)

    @admin.display(description="event")
    def event_link(self, letter: DeadLetter) -> SafeString | str:
        event = StoredEvent.objects.filter(event_id=letter.event_id).first() if _is_uuid(letter.event_id) else None
        if event is None:
            return letter.event_id or "-"
        return format_html("<a href='{}'>{}</a>", reverse("admin:events_storedevent_change", args=[event.pk]), letter.event_id)

    @admin.display(description="envelope")
    def pretty_envelope(self, letter: DeadLetter) -> SafeString | str:
        return _pretty_json(letter.envelope) if letter.envelope is not None else "-"

    @admin.action(description="Replay to its handler", permissions=["replay"])
    def replay(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        done = 0
        for dead_letter in queryset:
            try:
                dead_letter_replay(dead_letter=dead_letter)
            except (NotReplayable, EventError) as exc:
                self.message_user(request, f"#{dead_letter.pk} not replayed: {exc}", messages.WARNING)
            else:
                done += 1
        if done:
            self.message_user(request, f"{done} dead letter(s) replayed.", messages.SUCCESS)

    def has_replay_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("events.change_deadletter")


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
