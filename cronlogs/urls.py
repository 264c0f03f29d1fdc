from django.urls import re_path

from cronlogs import views

urlpatterns = [
    re_path(r"^api/cron/health/?$", views.cron_health, name="cron-health"),
    re_path(r"^api/cron/metrics/?$", views.cron_metrics, name="cron-metrics"),
    re_path(r"^api/cron/(?P<cron_type>[A-Za-z0-9_-]+)/?$", views.cron_job, name="cron-job"),
]
