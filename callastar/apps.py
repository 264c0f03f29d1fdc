from django.apps import AppConfig


class CallastarConfig(AppConfig):
    """The project itself, as an app: what depends on every other app (the demo)."""

    name = "callastar"
    verbose_name = "Call a Star"
