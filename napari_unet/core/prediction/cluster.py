"""Where a block-wise prediction runs: a dask.distributed cluster, or this process.

:class:`DaskCluster` starts a :class:`distributed.LocalCluster` of worker processes on
this machine, or connects to an existing scheduler, and closes what it started when
the ``with`` block ends. ``distributed`` is imported only when a cluster is asked for.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import UserInputError

#: Seconds to wait for a scheduler to answer (connecting, then its first worker).
SCHEDULER_TIMEOUT = 10


class DaskCluster:
    """``workers`` local worker processes (started here, closed at the end) or the
    scheduler at ``address`` (connected to); neither: no cluster (:meth:`start` gives
    ``None``, the graph runs in this process). ``note`` hears where the work runs and
    where its dashboard is.

    Use as ``with DaskCluster(...) as client:`` (the client, or ``None``).
    """

    def __init__(
        self,
        workers: int | None = None,
        address: str | None = None,
        note: Callable[[str], None] | None = None,
    ) -> None:
        self.workers, self.address = workers, address
        self.note = note or (lambda text: None)
        self.client = self.cluster = None

    @property
    def wanted(self) -> bool:
        """Whether a cluster was asked for at all."""
        return bool(self.workers or self.address)

    def start(self):
        """The :class:`distributed.Client`, started on first use (``None``: this process).

        Raises
        ------
        UserInputError
            The scheduler cannot be reached, or has no workers.
        """
        if self.client is not None or not self.wanted:
            return self.client
        import logging

        from distributed import Client, LocalCluster

        if self.workers:
            self.cluster = LocalCluster(
                n_workers=self.workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=":0",
                silence_logs=logging.ERROR,
            )
            self.client = Client(self.cluster)
            where = f"{self.workers} worker process{'es' if self.workers > 1 else ''} here"
        else:
            try:
                self.client = Client(self.address, timeout=f"{SCHEDULER_TIMEOUT}s")
            except (OSError, TimeoutError, ValueError) as e:
                raise UserInputError(
                    f"cannot reach the dask scheduler at {self.address} ({first_line(e)}); "
                    "check the address, or start one with 'dask scheduler' and 'dask worker'"
                ) from None
            try:
                self.client.wait_for_workers(1, timeout=3 * SCHEDULER_TIMEOUT)
            except TimeoutError:
                raise UserInputError(
                    f"the dask scheduler at {self.address} has no workers; start some with "
                    f"'dask worker {self.address}'"
                ) from None
            n = len(self.client.scheduler_info().get("workers", {}))
            where = f"{n} worker{'s' if n != 1 else ''} of {self.address}"
        self.note(f"predicting on dask: {where}")
        import importlib.util

        services = self.client.scheduler_info().get("services", {})
        # the dashboard needs bokeh where the scheduler runs (here, for local workers)
        if "dashboard" in services and (self.address or importlib.util.find_spec("bokeh")):
            self.note(f"dask dashboard: {self.client.dashboard_link}")
        elif "dashboard" in services:
            self.note("dask dashboard: pip install bokeh to see the cluster at work in a browser")
        return self.client

    def close(self) -> None:
        """Close the client, and the local cluster if it was started here."""
        for thing in (self.client, self.cluster):
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # noqa: BLE001 - closing a cluster that already failed
                    pass
        self.client = self.cluster = None

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc) -> None:
        self.close()


def first_line(e: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
