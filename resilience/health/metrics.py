"""Whether this process still writes its metrics: a warning, never a failure."""

from __future__ import annotations

import dataclasses

from health_check import HealthCheck
from health_check.exceptions import ServiceWarning

from .. import metricsdir


@dataclasses.dataclass
class MetricsDirectory(HealthCheck):
    """The metrics directory is fit for writing, and this process still writes to it.

    Looked at again on every run, so a disk that filled or went read-only since
    startup is found before a file must grow into it. Serving goes on without
    metrics: a ``ServiceWarning``, which questdash's views answer with 200.
    """

    def run(self) -> None:
        found = metricsdir.problem()
        if found is not None:
            metricsdir.drop(found)  # found at runtime: never grow a file into it
        why = metricsdir.dropped()
        if why is not None:
            raise ServiceWarning(f"metrics are dropped: {found or why}")
