from django.apps import AppConfig


class TestsConfig(AppConfig):
    name = "tests"
    label = "tests_support"

    def ready(self) -> None:
        from tests import support  # noqa: F401 - registers the test event types and handlers
