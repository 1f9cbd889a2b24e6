"""Observability of the bus: what happened to an event, and is everything up.

- `runs`: the handler runs the trace view shows (timing and attempt on the inbox row, one
  `HandlerFailure` row per failed attempt);
- `metrics`: Prometheus counters and histograms written by every process, gauges read from the
  database at scrape time, and the `/metrics` view;
- `trace`: one flow of events as a tree by causation, with each handler's runs and dead letters;
- `console`: open dead letters grouped by cause; retry or archive a group;
- `health`: the `/health/` checks (database, broker, relay lag, dead letters, consumers);
- `logs`: the event context on every log record, and the JSON format.

The bus calls these through one-line hooks where things happen. A hook never raises into the
bus: observing must not change what the bus does.
"""
