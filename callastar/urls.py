from django.contrib import admin
from django.urls import include, path

admin.site.site_header = "Call a Star jobs"
admin.site.site_title = "Call a Star jobs"
admin.site.index_title = "Back office"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("cronlogs.urls")),
    path("", include("payouts.urls")),
]
