from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from events.deadletters import NotReplayable, dead_letter_replay
from events.errors import EventError
from events.models import DeadLetter, InboxEntry, StoredEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


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
    list_display = [
        "position",
        "routing_key",
        "event_version",
        "subject",
        "sequence",
        "timestamp",
        "published_at",
        "rejected_reason",
    ]
    list_filter = [PublishedFilter, "event_type", "topic"]
    search_fields = ["=event_id", "=subject", "=correlation_id", "=causation_id"]
    date_hierarchy = "timestamp"


@admin.register(InboxEntry)
class InboxEntryAdmin(ReadOnlyAdmin):
    list_display = ["event_id", "handler", "event_type", "processed_at"]
    list_filter = ["handler", "event_type"]
    search_fields = ["=event_id"]


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "status", "stage", "service", "handler", "event_type", "event_id", "attempts", "reason"]
    list_filter = ["status", "stage", "service", "handler", "event_type"]
    search_fields = ["=event_id", "reason"]
    actions = ["replay"]

    @admin.action(description="Replay to its handler")
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

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return request.user.has_perm("events.change_deadletter")
