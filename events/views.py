"""The event catalogue as a page: /events/catalogue/, server-rendered, no script and nothing fetched from elsewhere."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from events import asyncapi


@require_GET
def catalogue(request: HttpRequest) -> HttpResponse:
    return render(
        request, "events/catalogue.html", {"event_types": asyncapi.catalogue(), "document_url": "/api/events/asyncapi.json"}
    )
