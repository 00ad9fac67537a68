"""Project code for custom transforms (``module:function``, ``lib/`` is on ``sys.path``)."""
