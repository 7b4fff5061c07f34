"""Registers the project's operator extra links (include/shopstream/ops/links.py) with Airflow.

The webserver rebuilds a task's links from the serialized DAG, and only for link classes that
a plugin names; without this plugin the buttons would not appear.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from include.shopstream.ops import links


class ShopStreamLinksPlugin(AirflowPlugin):
    name = "shopstream_links"
    operator_extra_links = [link() for link in links.ALL]
