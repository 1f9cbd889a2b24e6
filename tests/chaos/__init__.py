"""The fault-injection suite (`make chaos`): real processes, one fault at a time, then the ledger.

Also a Django app (`tests.chaos`, installed by `tests.chaos.settings` only) whose `events.py` and
`handlers.py` give the suite a service of its own, `chaos`, with handlers that misbehave on purpose.
"""
