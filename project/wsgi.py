import os

import django
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

django.setup(set_prefix=False)
from events import telemetry  # noqa: E402 - needs the settings

# Before the handler loads the middleware: Django's instrumentation adds its own (only when OTEL_* asks for it).
telemetry.setup("web")
application = get_wsgi_application()
