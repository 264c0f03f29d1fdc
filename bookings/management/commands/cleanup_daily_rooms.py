from bookings.room_cleanup import bookings_holding_rooms
from cronlogs.commands import JobCommand


class Command(JobCommand):
    job_name = "cleanup-daily-rooms"

    def handle(self, *args, **options):
        super().handle(*args, **options)
        if options["dry_run"] and not options["json"]:
            # The summary line only counts; a person checking a dry run wants the names.
            for booking_id, room in bookings_holding_rooms().values_list("pk", "daily_room_name"):
                self.stdout.write(f"would delete room {room} (booking {booking_id})")
