"""``make bench``: how close the pipelines and the orchestration come to the floor.

Every figure is measured against a baseline taken in the same run on the same machine, and
reported as a ratio, because the machines this runs on are shared and noisy.
"""
