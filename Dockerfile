# One image for every Django process (web, relay, workers, beat, flower, migrate);
# docker-compose.yml picks the process with `command:`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app

WORKDIR /app

# The project installs no packages of its own (`packages = []`), so install just its pinned
# dependencies, read from pyproject.toml, plus flower from the dev extra (the other dev tools
# stay out of the image). Only pyproject.toml is copied first: this layer is rebuilt only when
# the dependencies change.
COPY pyproject.toml ./
RUN python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + [r for r in p['optional-dependencies']['dev'] if r.startswith('flower')]))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The code stays root-owned; the app user may write only db/ (SQLite when DATABASE_URL is
# unset; db/metrics, the processes' shared metrics) and staticfiles/.
RUN groupadd --gid 1000 app && useradd --uid 1000 --gid 1000 --create-home app
COPY . .
RUN mkdir -p db/metrics staticfiles && chown -R 1000:1000 db staticfiles
USER 1000:1000

# Static files are served by whitenoise; this key exists only for this build step.
RUN SECRET_KEY=collectstatic-build-only DEBUG=False python manage.py collectstatic --no-input

EXPOSE 8000
CMD ["gunicorn", "project.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", "--access-logfile", "-"]
