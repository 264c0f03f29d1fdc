from django.urls import re_path

from payouts import views

urlpatterns = [
    re_path(r"^api/stripe/webhook/?$", views.stripe_webhook, name="stripe-webhook"),
]
