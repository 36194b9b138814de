"""The two kinds of error a step raises, named by what another try of the task would do.

The Airflow side (``dags/run_context.py``) fails a task at once on a :class:`FinalError` and
leaves every other error to the task's retries; nothing there reads a message text.
"""

from __future__ import annotations


class FinalError(Exception):
    """Another try would meet it again: a setting, input past its threshold, a request the API
    refuses, a schema that does not fit, results that do not add up."""


class TransientError(Exception):
    """Another try may succeed: the network, a busy or restarting server, a lock held too long."""
