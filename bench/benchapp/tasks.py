import time

from celery import shared_task

from bench.benchapp.models import BenchMarker


@shared_task(name="bench.noop", ignore_result=True)
def bench_noop(marker: str | None = None) -> None:
    """The trivial task; with `marker` it records when it ran (the last task of a run does)."""
    if marker:
        BenchMarker.objects.create(name=marker, at=time.time())
