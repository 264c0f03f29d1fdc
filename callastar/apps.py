from django.apps import AppConfig


class CallastarConfig(AppConfig):
    """The project itself, as an app: what depends on every other app (the demo)."""

    name = "callastar"
    verbose_name = "Call a Star"

    def ready(self):
        from callastar import checks  # noqa: F401 - registers the deployment checks
