from django.core.management.base import BaseCommand

from callastar.demo import DEMO_STAFF_EMAIL, DEMO_STAFF_PASSWORD, seed_demo_data


class Command(BaseCommand):
    help = (
        "Load demo data so every job has work: creators and clients, bookings due for a "
        "reminder, finished bookings holding Daily rooms, approved payouts and old log rows. "
        "Safe to run again: people are reused, new bookings are added around the current time."
    )

    def handle(self, *args, **options):
        counts = seed_demo_data()
        summary = ", ".join(f"{count} {name}" for name, count in counts.items())
        self.stdout.write(self.style.SUCCESS(f"Demo data loaded: {summary}."))
        self.stdout.write(f"Admin login: {DEMO_STAFF_EMAIL} / {DEMO_STAFF_PASSWORD}")
