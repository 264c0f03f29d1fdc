from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, models, transaction
from django.utils import timezone


class ContextKey(models.Func):
    """A key of `Log.context` as text: `context ->> 'key'`, the expression the indexes use.

    Django's KeyTextTransform would do on PostgreSQL, but on SQLite it compares the
    right-hand side as JSON; this one compares plain text on both.
    """

    output_field = models.TextField()

    def __init__(self, key, column="context"):
        if not key.isidentifier():
            raise ValueError(f"not a plain JSON key: {key!r}")
        self.key = key
        super().__init__(models.F(column))

    def as_sql(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        return f"({column} ->> %s)", [*params, self.key]

    def as_sqlite(self, compiler, connection, **extra):
        column, params = compiler.compile(self.source_expressions[0])
        return f"CAST(json_extract({column}, %s) AS TEXT)", [*params, f"$.{self.key}"]


class LogQuerySet(models.QuerySet):
    def with_cron_type(self):
        return self.alias(cron_type=ContextKey("cronType"))

    def for_job(self, cron_type):
        return self.with_cron_type().filter(cron_type=cron_type)


class Log(models.Model):
    """One structured event: a job run, an email, a Daily room, a payout.

    Stored in the table "Log" with the platform's column names so that the SQL in
    docs (`SELECT * FROM "Log" WHERE context->>'cronType' = ...`) runs unchanged.
    """

    class Type(models.TextChoices):
        CRON_STARTED = "CRON_STARTED"
        CRON_RUN = "CRON_RUN"
        CRON_ERROR = "CRON_ERROR"
        CRON_SKIPPED = "CRON_SKIPPED"
        CRON_PAUSED = "CRON_PAUSED"
        CRON_RESUMED = "CRON_RESUMED"
        CRON_PING_FAILED = "CRON_PING_FAILED"
        EMAIL_SENT = "EMAIL_SENT"
        EMAIL_ERROR = "EMAIL_ERROR"
        EMAIL_SKIPPED = "EMAIL_SKIPPED"
        DAILY_ROOM_DELETED = "DAILY_ROOM_DELETED"
        DAILY_ROOM_ERROR = "DAILY_ROOM_ERROR"
        PAYOUT_SUCCESS = "PAYOUT_SUCCESS"
        PAYOUT_ERROR = "PAYOUT_ERROR"
        PAYOUT_AUDIT = "PAYOUT_AUDIT"
        # Something in the shared data looked wrong and was worked around (e.g. an
        # unknown time zone).
        DATA_WARNING = "DATA_WARNING"

    class Status(models.TextChoices):
        SUCCESS = "SUCCESS"
        ERROR = "ERROR"

    class Level(models.TextChoices):
        INFO = "INFO"
        WARNING = "WARNING"
        ERROR = "ERROR"
        CRITICAL = "CRITICAL"

    # The row a run writes when it ends; every run that got its lock writes exactly one.
    FINISHED_TYPES = (Type.CRON_RUN, Type.CRON_ERROR)
    RUN_TYPES = (Type.CRON_RUN, Type.CRON_ERROR, Type.CRON_SKIPPED)
    # The context key (true) of the rows of a staff action that did part of a job's work
    # (one booking's reminder, one payout): the job's state does not read them.
    PARTIAL_RUN_KEY = "partialRun"
    # Every row about a job's runs and controls, as the admin's "Cron runs" shows them.
    JOB_TYPES = (
        *RUN_TYPES,
        Type.CRON_STARTED,
        Type.CRON_PAUSED,
        Type.CRON_RESUMED,
        Type.CRON_PING_FAILED,
    )

    type = models.CharField(max_length=32, choices=Type.choices)
    status = models.CharField(max_length=10, choices=Status.choices)
    level = models.CharField(max_length=10, choices=Level.choices, default=Level.INFO)
    message = models.TextField()
    context = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    error = models.TextField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_column="createdAt", db_index=True)

    objects = LogQuerySet.as_manager()

    class Meta:
        db_table = "Log"
        ordering = ["-created_at"]
        indexes = [
            # Retention deletes per level below a cut-off date.
            models.Index(fields=["level", "created_at"], name="log_level_created_idx"),
            # Admin views per type ("Cron runs", "Email logs") newest first.
            models.Index(fields=["type", "created_at"], name="log_type_created_idx"),
            models.Index(fields=["status", "created_at"], name="log_status_created_idx"),
            # Last run of a job, its history and the admin filter by job.
            models.Index(ContextKey("cronType"), "created_at", name="log_crontype_created_idx"),
            # Admin search by booking id.
            models.Index(ContextKey("bookingId"), name="log_booking_idx"),
        ]
        permissions = [("run_cron_jobs", "Can run cron jobs by hand from the admin")]

    def __str__(self):
        created = (
            f"{timezone.localtime(self.created_at):%Y-%m-%d %H:%M:%S}" if self.created_at else "new"
        )
        return f"{self.type} {created} {self.message[:60]}"


# Proxies give the admin one page per kind of row ("Cron runs", "Email logs", ...) and the
# Jobs page; they add no table.


class CronRun(Log):
    TYPES = Log.JOB_TYPES

    class Meta:
        proxy = True
        verbose_name = "cron run"
        verbose_name_plural = "cron runs"


class EmailLog(Log):
    TYPES = (Log.Type.EMAIL_SENT, Log.Type.EMAIL_ERROR, Log.Type.EMAIL_SKIPPED)

    class Meta:
        proxy = True
        verbose_name = "email log"
        verbose_name_plural = "email logs"


class DailyRoomLog(Log):
    TYPES = (Log.Type.DAILY_ROOM_DELETED, Log.Type.DAILY_ROOM_ERROR)

    class Meta:
        proxy = True
        verbose_name = "Daily room log"
        verbose_name_plural = "Daily room logs"


class CronJob(Log):
    """The admin's Jobs page; its rows are the jobs in `cronlogs.jobs`, not Log rows."""

    class Meta:
        proxy = True
        verbose_name = "job"
        verbose_name_plural = "jobs"


class JobState(models.Model):
    """What is known about a job beyond its log rows: whether staff paused it (who, why,
    since when), and the unhealthy state ADMINS were last told about ("" once healthy),
    so that each change of state is emailed once, however many processes notice it."""

    job = models.CharField(max_length=64, primary_key=True)
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_by = models.CharField(max_length=254, blank=True, default="")
    pause_reason = models.TextField(blank=True, default="")
    alerted_state = models.CharField(max_length=20, blank=True, default="")
    alerted_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return self.job


class RunCount(models.Model):
    """How many runs of a job ended in an outcome (success, degraded, error, skipped), ever:
    what `callastar_cron_runs_total` reports.

    The runner adds one as it writes each run's last row. Counting the Log table instead
    would cost a scan that grows with the table at every scrape, and would go down when
    retention deletes old rows, which Prometheus reads as a counter reset.
    """

    job = models.CharField(max_length=64)
    outcome = models.CharField(max_length=16)
    total = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["job", "outcome"], name="runcount_job_outcome_uniq")
        ]

    def __str__(self):
        return f"{self.job} {self.outcome}: {self.total}"

    @classmethod
    def add_one(cls, job, outcome):
        counter = cls.objects.filter(job=job, outcome=outcome)
        with transaction.atomic():
            if counter.update(total=models.F("total") + 1):
                return
            try:
                with transaction.atomic():
                    cls.objects.create(job=job, outcome=outcome, total=1)
            except IntegrityError:
                # Another run created it first; its row is there to add to now.
                counter.update(total=models.F("total") + 1)
