"""How a producer publishes an output: its gold table written, then its lake files, then its Dataset event.

Every producer ends this way, in this order. The event is recorded last, so a run that fails
anywhere before it announces nothing and no consumer runs on a half-published output.

The steps are named after the output's announcing task in the registry (``outputs.py``):
beside ``announce_<name>`` they are ``build_<name>``, ``swap_<name>``, ``merge_<name>`` and
``publish_<name>``, e.g. ``product_catalog.build_catalog`` ... ``product_catalog.announce_catalog``.
"""

from __future__ import annotations

from itertools import pairwise
from typing import TYPE_CHECKING

from include.shopstream.platform import sql_steps
from include.shopstream.platform.names import STAGING
from include.shopstream.platform.sql_steps import table
from include.shopstream.platform.tasks import announce, swap_into_gold
from include.shopstream.platform.warehouse import staging_name

if TYPE_CHECKING:
    from include.shopstream.platform.compat import XComArg
    from include.shopstream.platform.outputs import Output


def _task_id(output: Output, step: str) -> str:
    """``<step>_<name>``, where the output's event task is ``announce_<name>``."""
    announcing = output.announce_task_id
    if not announcing.startswith("announce_"):
        raise ValueError(f"{output.name}: its announcing task {announcing!r} is not announce_<name>")
    return step + announcing.removeprefix("announce")


def rebuild(output: Output, columns: tuple[str, ...], *, built_after: XComArg | None = None, **tables):
    """Build the output's gold table whole, then swap it in: readers never see it half-written.

    ``build_<name>`` writes the rows of ``sql/<table>.sql`` (``tables`` are its identifiers) into
    the run's ``staging.<table>_build``; ``swap_<name>`` replaces the gold table's rows with them
    in one transaction. With ``built_after`` (``note_gold_writes``), the build starts after it and
    a build older than the one in place is not swapped in. Returns the swap.
    """
    build = f"{output.table_name}_build"
    built = sql_steps.transform_file(
        _task_id(output, "build"), f"{output.table_name}.sql", table(build, STAGING), **tables
    )
    swap = swap_into_gold.override(task_id=_task_id(output, "swap"))
    if built_after is None:
        swapped = swap(staging_name(build), output.table, columns)
    else:
        built_after >> built
        swapped = swap(staging_name(build), output.table, columns, built_after=built_after)
    built >> swapped
    return swapped


def merge(output: Output, staged, columns: tuple[str, ...]):
    """``merge_<name>``: the rows of ``staged`` merged into the output's gold table on its business key."""
    return sql_steps.merge(_task_id(output, "merge"), table(output.table_name), staged, columns, output.key)


def export(output: Output):
    """``publish_<name>``: the output's gold table, whole, written over its one lake file."""
    if len(output.files) != 1 or output.files[0].partition is not None:
        raise ValueError(f"{output.name}: not one unpartitioned lake file; publish it with the step that writes it")
    path = output.files[0].uri_for()
    return sql_steps.export_file(_task_id(output, "publish"), table(output.table_name), path)


def publish(output: Output, written, *, lake=None, day=None):
    """After ``written`` (the step or steps that leave the gold table as the run means it): the
    lake files, then the output's Dataset event (``announce``, with ``day`` when given).

    ``lake`` is the step that writes the lake files when exporting the gold table whole to its
    one file (``export``) does not fit; an output with no lake files has no such step.
    Returns the event's task.
    """
    steps = [written]
    if lake is not None:
        steps.append(lake)
    elif output.files:
        steps.append(export(output))
    steps.append(announce(output, day))
    for before, after in pairwise(steps):
        before >> after
    return steps[-1]
