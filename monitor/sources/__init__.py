"""Sources of entries: RSS/Atom/JSON feeds over HTTP (feed.py) and local directories (directory.py).

Each turns a configured Feed into Entry values; fetching goes through monitor.net, parsing through the worker pool.
"""
