import logging
import runpy

import pytest
from django.conf import settings
from django.core import mail
from django.test import override_settings


@pytest.mark.parametrize(
    ("email_url", "backend"),
    [
        (None, "project.mail.LoggingEmailBackend"),
        ("consolemail://", "project.mail.LoggingEmailBackend"),
        ("smtp+tls://user:pass@smtp.example.com:587", "django.core.mail.backends.smtp.EmailBackend"),
    ],
)
def test_the_console_is_the_log_and_other_email_urls_are_kept(
    email_url: str | None, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if email_url is None:
        monkeypatch.delenv("EMAIL_URL", raising=False)
    else:
        monkeypatch.setenv("EMAIL_URL", email_url)

    assert runpy.run_path(str(settings.BASE_DIR / "project" / "settings.py"))["EMAIL_BACKEND"] == backend


@override_settings(EMAIL_BACKEND="project.mail.LoggingEmailBackend")
def test_an_email_is_one_info_record_with_its_recipients_subject_and_body(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="project.mail"):
        sent = mail.send_mail("Welcome aboard", "Hello ada,\nyour account is ready.", "no-reply@localhost", ["ada@example.com"])

    assert sent == 1
    [record] = [r for r in caplog.records if r.name == "project.mail"]
    assert record.levelno == logging.INFO
    assert record.getMessage() == (
        "email to ada@example.com\nFrom: no-reply@localhost\nTo: ada@example.com\nSubject: Welcome aboard\n\n"
        "Hello ada,\nyour account is ready."
    )
