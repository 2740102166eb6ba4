"""The read-only web dashboard over a runs root (`hpcx ui`): the runs list, a run's page and a sweep's page.

``access``: the token and the one path rule (nothing outside the runs root); ``series``: a run's learning curves
read from where the last refresh stopped; ``data``: the JSON documents the pages fetch; ``pages``: the HTML
shells (the report's page kit); ``server``: the standard library's HTTP server that ties them together. The
pages' script and style ship in ``static/``; the charting library is plotly.js from the ``plotly`` package
(the ``ui`` extra), served from where pip installed it, so the pages need no internet.
"""
