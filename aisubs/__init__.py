"""AI-Subs: subtitles from speech, as a durable, fair, autoscaling service.

Domain logic lives in this package and imports no Ray; ``serve_app`` and
``deployments`` are the thin Ray shells around it.
"""

__version__ = "0.1.0"
