"""Running the platform: alerts and their outbox, the 04:00 check, cluster policies and
extra links.

Builds on ``platform``; never imports ``pipelines``.
"""
