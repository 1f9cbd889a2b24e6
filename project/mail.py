"""An email backend for development: each email becomes one INFO record of the logger `project.mail`.

Django's console backend writes raw text to stdout, which a Celery worker would turn into
`WARNING celery.redirected` lines, one per line of the email. Logged instead, an email shows
once, as what it is, among the other log lines of the process that sent it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.core.mail import EmailMessage
from django.core.mail.backends.base import BaseEmailBackend

logger = logging.getLogger(__name__)


class LoggingEmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        for message in email_messages:
            logger.info(
                "email to %s\nFrom: %s\nTo: %s\nSubject: %s\n\n%s",
                ", ".join(message.recipients()),
                message.from_email,
                ", ".join(message.to),
                message.subject,
                message.body,
            )
        return len(email_messages)
